"""``--align faces``: ordinary photos in, one aligned crop per face through the usual run, photos out.

:meth:`FaceSession.stage` detects every face of every photo, warps each to the generator's convention at the
size the task observes (``OUT/.mgan/faces/<stem>_face<k>.png``; references and masks alike), and returns the
crops as the run's inputs, so each face is restored like any aligned image into ``OUT/<stem>_face<k>.png``.
:meth:`FaceSession.annotate` then turns each record back into the photo's: ``input`` is the photo, ``face``
says which face (index, detector box, landmarks' alignment, the photo -> crop transform) and ``identity``
is dlib's descriptor distance to the reference (the input's own face for ``invert``). :meth:`paste_back`
writes ``OUT/<stem>.png``: the photo (for ``superres`` upsampled ``scale`` times, bicubic) with every restored
face warped back by the inverse transform and blended with a feathered mask; pixels outside the faces'
crops are the photo's own. A photo with no face is reported (failed) and skipped.

Every photo's outputs (each ``OUT/<stem>_face<k>.png`` and, with paste-back, the composite) are claimed in the
run's output-name planning (:class:`mgan_cli.run.names.OutputNames`) before anything of it is staged: a photo
whose outputs another input claimed first is refused with its own failed row. Rows and warnings name the
user's photo, never a staged file (:meth:`FaceSession.user_text`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mgan_cli.errors import ImageInputError, MganError
from mgan_cli.faces.alignment import FaceTransform, face_transform, warp_to_crop
from mgan_cli.faces.detection import DetectedFace, detect_faces
from mgan_cli.faces.identity import SAME_PERSON_THRESHOLD, face_descriptor, identity_distance
from mgan_cli.faces.paste import paste_into
from mgan_cli.run.failures import Failure, Stage
from mgan_cli.run.names import OutputNames
from mgan_cli.run.records import ImageRecord
from mgan_cli.utils.atomic import make_folder, write_atomic
from mgan_cli.utils.imageio import MAX_PIXELS, decode_image, decode_mask
from mgan_cli.utils.pairing import find_by_stem

STAGING = Path(".mgan") / "faces"
#: crops smaller than this are upsampled (bicubic) before dlib's landmarks and descriptor
IDENTITY_MIN_SIDE = 200


def scaled(transform: FaceTransform, factor: float, size: int) -> FaceTransform:
    """``transform`` followed by a uniform scaling of the crop by ``factor`` (a crop of ``size``)."""
    return FaceTransform(transform.matrix * factor, size)


@dataclass
class StagedFace:
    photo: Path
    index: int
    face: DetectedFace
    transform: FaceTransform  # photo -> observed crop (the run's input)
    crop: Path
    output: Path
    reference_crop: Path | None = None

    def info(self, alignment: str, resolution: int) -> dict[str, Any]:
        return {"photo": str(self.photo), "index": self.index, **self.face.to_json(), "alignment": alignment,
                "transform": self.transform.to_json(),
                "output_transform": scaled(self.transform, resolution / self.transform.size, resolution).to_json()}


@dataclass
class FaceSession:
    """One run's faces (see the module docstring)."""

    output_dir: Path
    alignment: str
    alignment_options: dict[str, Any]
    observed_size: int
    resolution: int
    compare_to_input: bool
    faces: dict[str, StagedFace] = field(default_factory=dict)  # by crop path
    failed: list[ImageRecord] = field(default_factory=list)
    photo_notes: dict[str, list[str]] = field(default_factory=dict)
    reference_dir: Path | None = None  # the run's --reference (set by :meth:`stage`)
    composites: bool = False  # --paste-back: a composite OUT/<stem>.png per photo is one of the photo's outputs
    names: OutputNames = field(default_factory=lambda: OutputNames(()))  # the run's output names (:meth:`stage`)
    _said: dict[str, str] = field(default_factory=dict)  # a staged file's path -> how messages name it

    @property
    def staging(self) -> Path:
        return self.output_dir / STAGING

    def stage(self, photos: list[Path], reference_dir: Path | None = None, mask: Path | None = None) \
            -> tuple[list[Path], Path | None, Path | None]:
        """Crops of every face as the run's inputs; returns ``(inputs, reference_dir, mask)`` for the run.
        :attr:`names` (the run's output-name planning, to be the job's) then holds every photo's outputs."""
        self.reference_dir = reference_dir
        self.names = OutputNames(photos)
        make_folder(self.output_dir, self.staging / "input")
        inputs: list[Path] = []
        for photo in photos:
            try:
                inputs.extend(self._stage_photo(photo, reference_dir, mask))
            except _RefusedError as exc:
                self.failed.append(ImageRecord(input=str(photo)).fail(Failure(Stage.PLAN, str(exc))))
            except MganError as exc:
                self.failed.append(ImageRecord(input=str(photo)).fail(Failure(Stage.INPUT, str(exc))))
        staged_refs = self.staging / "reference" if reference_dir is not None else None
        staged_masks = self.staging / "mask" if mask is not None else None
        return inputs, staged_refs, staged_masks

    def _stage_photo(self, photo: Path, reference_dir: Path | None, mask: Path | None) -> list[Path]:
        decoded = decode_image(photo)
        self.photo_notes[str(photo)] = list(decoded.notes)
        pixels = np.asarray(decoded.image.convert("RGB"))
        faces = detect_faces(pixels)
        if not faces:
            raise ImageInputError(f"{photo}: no face found (dlib's frontal face detector)")
        reference = self._reference_photo(photo, reference_dir)
        mask_image = self._mask_photo(photo, mask, pixels.shape[1::-1]) if mask is not None else None
        outputs = [self.output_dir / f"{photo.stem}_face{index}.png" for index in range(len(faces))]
        refusal = self.names.claim(photo, [*outputs, self.composite(photo)] if self.composites else outputs)
        if refusal is not None:  # before anything of this photo is staged
            raise _RefusedError(refusal)
        crops = []
        for index, face in enumerate(faces):
            stem = f"{photo.stem}_face{index}"
            transform = face_transform(self.alignment, face.landmarks, self.observed_size, self.alignment_options)
            crop_path = self.staging / "input" / f"{stem}.png"
            self.names.stand_for(crop_path, photo)
            self._said[str(crop_path)] = f"{photo} (face {index})"
            for kind in ("reference", "mask"):
                self._said[str(self.staging / kind / f"{stem}.png")] = f"the {kind} of {photo} (face {index})"
            _save(warp_to_crop(pixels, transform), crop_path)
            staged = StagedFace(photo, index, face, transform, crop_path, self.output_dir / f"{stem}.png")
            if reference is not None:
                factor = reference.shape[1] / pixels.shape[1]  # reference pixels per photo pixel
                to_reference = FaceTransform(np.array([[1 / factor, 0, 0], [0, 1 / factor, 0]]), 0)
                ref_transform = FaceTransform(
                    _compose(scaled(transform, self.resolution / self.observed_size, self.resolution).matrix,
                             to_reference.matrix), self.resolution)
                make_folder(self.output_dir, self.staging / "reference")
                staged.reference_crop = self.staging / "reference" / f"{stem}.png"
                _save(warp_to_crop(reference, ref_transform), staged.reference_crop)
            if mask_image is not None:
                make_folder(self.output_dir, self.staging / "mask")
                big = scaled(transform, self.resolution / self.observed_size, self.resolution)
                warped = warp_to_crop(np.repeat(mask_image[:, :, None], 3, axis=2), big)[:, :, 0]
                _save(warped, self.staging / "mask" / f"{stem}.png")
            self.faces[str(crop_path)] = staged
            crops.append(crop_path)
        return crops

    def composite(self, photo: Path) -> Path:
        """Where :meth:`paste_back` writes ``photo`` with its restored faces."""
        return self.output_dir / f"{photo.stem}.png"

    def user_text(self, text: str) -> str:
        """``text`` (an error, a note, a warning) with every staged file named as the user's photo and face."""
        if str(self.staging) not in text:
            return text
        for staged in sorted(self._said, key=len, reverse=True):
            text = text.replace(staged, self._said[staged])
        return text

    def _reference_photo(self, photo: Path, reference_dir: Path | None) -> np.ndarray | None:
        if reference_dir is None:
            return None
        path = find_by_stem(reference_dir, photo.stem)
        if path is None:
            return None
        return np.asarray(decode_image(path).image.convert("RGB"))

    def _mask_photo(self, photo: Path, mask: Path, size: tuple[int, int]) -> np.ndarray:
        path = find_by_stem(mask, photo.stem) if mask.is_dir() else mask
        if path is None:
            raise ImageInputError(f"{photo}: no mask named {photo.stem}.* in {mask}")
        image = decode_mask(path).image
        if image.size != size:
            raise ImageInputError(f"{photo}: with --align faces the mask {path} must have the photo's size "
                                  f"{size[0]}x{size[1]}, not {image.size[0]}x{image.size[1]}")
        return np.asarray(image.convert("L"))

    # -- after each image --------------------------------------------------------------------------------
    def annotate(self, record: ImageRecord) -> ImageRecord:
        """The record of a face crop made the photo's (see the module docstring); others pass unchanged."""
        staged = self.faces.get(record.input)
        if staged is None:
            return record
        record.input = str(staged.photo)
        record.notes[:0] = self.photo_notes.get(str(staged.photo), [])
        record.notes = [self.user_text(note) for note in record.notes]
        if record.error is not None:
            record.error = self.user_text(record.error)
        if record.failure is not None:
            record.failure = Failure(record.failure.stage, self.user_text(record.failure.message))
        record.metrics["face"] = staged.info(self.alignment, self.resolution)
        if record.status == "ok" and record.output:
            distance, reason = self.identity(staged, Path(record.output))
            record.metrics["identity"] = distance
            if reason:
                record.metrics["identity_reason"] = reason
        return record

    def identity(self, staged: StagedFace, output: Path) -> tuple[float | None, str]:
        """dlib's descriptor distance between the restored face and the reference crop (the input crop for
        invert); ``(None, reason)`` when there is no reference or no face is found."""
        reference = staged.reference_crop or (staged.crop if self.compare_to_input else None)
        if reference is None or not reference.is_file():
            if self.reference_dir is None:
                return None, "no --reference"
            return None, f"no reference named {staged.photo.stem}.* in {self.reference_dir}"
        out_transform = scaled(staged.transform, self.resolution / self.observed_size, self.resolution)
        ref_size = np.asarray(Image.open(reference)).shape[0]
        box = _box_in_crop(staged.face.box, out_transform)
        restored = _descriptor(np.asarray(Image.open(output).convert("RGB")), box)
        ref_box = tuple(v * ref_size / self.resolution for v in box)
        return identity_distance(restored, _descriptor(np.asarray(Image.open(reference).convert("RGB")), ref_box))

    # -- at the end --------------------------------------------------------------------------------------
    def paste_back(self, records: list[ImageRecord], overwrite: bool) -> dict[str, str]:
        """Write ``OUT/<stem>.png`` for every photo with a restored face; returns ``{photo: error}`` for those
        that could not be written. Records of pasted faces get ``face.composite``."""
        by_photo: dict[str, list[tuple[StagedFace, ImageRecord]]] = {}
        for record in records:
            face = record.metrics.get("face")
            if isinstance(face, dict) and record.status in ("ok", "skipped") and record.output:
                staged = next((s for s in self.faces.values() if str(s.photo) == face["photo"]
                               and s.index == face["index"]), None)
                if staged is not None:
                    by_photo.setdefault(str(staged.photo), []).append((staged, record))
        errors: dict[str, str] = {}
        for photo, items in by_photo.items():
            target = self.composite(Path(photo))
            try:
                if target.resolve() == Path(photo).resolve():
                    raise OSError("it is the input photo")
                canvas = np.asarray(decode_image(Path(photo)).image.convert("RGB"))
                factor = self.resolution / self.observed_size
                if factor != 1:
                    size = (round(canvas.shape[1] * factor), round(canvas.shape[0] * factor))
                    if size[0] * size[1] > MAX_PIXELS:
                        raise ImageInputError(f"the photo scaled ×{factor:g} would be {size[0]}x{size[1]}, more "
                                              f"than {MAX_PIXELS} pixels; use a smaller --scale or photo")
                    canvas = np.asarray(Image.fromarray(canvas).resize(size, Image.Resampling.BICUBIC))
                for staged, record in sorted(items, key=lambda pair: pair[0].index):
                    crop = np.asarray(Image.open(record.output).convert("RGB"))
                    # canvas (the photo scaled by `factor`) -> restored crop (the observed crop scaled by
                    # `factor`): the linear part is the photo's, the offset scales
                    matrix = staged.transform.matrix.copy()
                    matrix[:, 2] *= factor
                    canvas = np.ascontiguousarray(canvas) if canvas.flags.writeable else canvas.copy()
                    paste_into(canvas, crop, FaceTransform(matrix, self.resolution))
                    record.metrics["face"]["composite"] = str(target)
                _save(canvas, target)
            except (OSError, MganError) as exc:
                errors[photo] = f"{target}: cannot write the composite ({exc})"
        return errors


class _RefusedError(MganError):
    """A photo's outputs cannot all be claimed (:meth:`OutputNames.claim` says why)."""


def _save(pixels: np.ndarray, path: Path) -> None:
    """Write a staged PNG atomically (:func:`mgan_cli.utils.atomic.write_atomic`: never through a planted link)."""
    write_atomic(path, lambda handle: Image.fromarray(pixels).save(handle, format="PNG"))


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    linear = outer[:, :2] @ inner[:, :2]
    return np.concatenate([linear, (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]], axis=1)


def _box_in_crop(box: tuple[float, float, float, float], transform: FaceTransform) -> tuple[float, ...]:
    corners = np.array([[box[0], box[1]], [box[2], box[1]], [box[0], box[3]], [box[2], box[3]]])
    mapped = transform.apply(corners)
    lo, hi = mapped.min(0).clip(0, transform.size), mapped.max(0).clip(0, transform.size)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def _descriptor(image: np.ndarray, box: tuple[float, ...]) -> Any:
    factor = 1
    while image.shape[0] * factor < IDENTITY_MIN_SIDE:
        factor *= 2
    if factor > 1:
        image = np.asarray(Image.fromarray(image).resize((image.shape[1] * factor, image.shape[0] * factor),
                                                         Image.Resampling.BICUBIC))
    return face_descriptor(image, tuple(v * factor for v in box))  # type: ignore[arg-type]


__all__ = ["SAME_PERSON_THRESHOLD", "FaceSession", "StagedFace"]
