"""The identity metric: dlib's 128-d face descriptor (ResNet, ``dlib_face_recognition_resnet_model_v1.dat``).

``identity`` in a report row is the Euclidean distance between the descriptors of the restored face and of
the reference (the input for ``invert``): dlib's model was trained so that two photos of the same person are
closer than **0.6** (99.38% on LFW with that threshold). Each descriptor is computed by dlib on its own face
chip (``get_face_chip``, 150x150, padding 0.25) from the 68 landmarks, exactly as
``compute_face_descriptor(image, shape)`` does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mgan_cli.faces.detection import detect_faces, dlib_module, landmark_predictor
from mgan_cli.weights.store import default_store

DESCRIPTOR_MODEL = "dlib-face-recognition-resnet-v1"
SAME_PERSON_THRESHOLD = 0.6
CHIP_SIZE, CHIP_PADDING = 150, 0.25


@functools.cache
def _recogniser(path: str) -> Any:
    return dlib_module().face_recognition_model_v1(path)


def recogniser() -> Any:
    return _recogniser(str(default_store().path(DESCRIPTOR_MODEL)))


@dataclass(frozen=True)
class Descriptor:
    vector: np.ndarray | None  # [128] float64, or None with ``reason``
    reason: str = ""


def face_descriptor(image: np.ndarray, box: tuple[float, float, float, float] | None = None) -> Descriptor:
    """The descriptor of the face in ``box`` (continuous coordinates), or of the largest face dlib detects."""
    dlib = dlib_module()
    image = np.ascontiguousarray(image)
    if box is None:
        faces = detect_faces(image)
        if not faces:
            return Descriptor(None, "no face found")
        box = faces[0].box
    rect = dlib.rectangle(round(box[0]), round(box[1]), round(box[2]) - 1, round(box[3]) - 1)
    shape = landmark_predictor()(image, rect)
    chip = dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
    return Descriptor(np.asarray(recogniser().compute_face_descriptor(chip), dtype=np.float64))


def identity_distance(restored: Descriptor, reference: Descriptor) -> tuple[float | None, str]:
    """``(distance, reason)``: dlib's descriptor distance (< 0.6 = same person), or ``None`` with why."""
    if restored.vector is None:
        return None, f"restored image: {restored.reason}"
    if reference.vector is None:
        return None, f"reference: {reference.reason}"
    return float(np.linalg.norm(restored.vector - reference.vector)), ""


def models_available() -> bool:
    """Whether both dlib models are in the cache or the mirror already (nothing is fetched)."""
    from mgan_cli.faces.detection import LANDMARKS_MODEL

    store = default_store()
    return all(store.status(name).path is not None for name in (LANDMARKS_MODEL, DESCRIPTOR_MODEL))


MODELS_HINT = ("dlib face models not fetched (`mgan weights fetch dlib-shape-predictor-68` and "
               "`mgan weights fetch dlib-face-recognition-resnet-v1`, or run once with --align faces)")


def identity_of_files(restored: Path, reference: Path) -> tuple[float | None, str]:
    """dlib's descriptor distance between the largest face of each image file (``None`` with why)."""
    from PIL import Image

    def descriptor(path: Path) -> Descriptor:
        image = np.asarray(Image.open(path).convert("RGB"))
        factor = 1
        while min(image.shape[:2]) * factor < 200:  # dlib finds faces of ~80 px and more: upsample small crops
            factor *= 2
        if factor > 1:
            image = np.asarray(Image.fromarray(image).resize((image.shape[1] * factor, image.shape[0] * factor),
                                                             Image.Resampling.BICUBIC))
        return face_descriptor(image)

    return identity_distance(descriptor(restored), descriptor(reference))


class IdentityRows:
    """``identity`` in every row of a run whose generator makes faces (without ``--align faces``): the distance
    between the output's face and the reference's (``--reference``; the input for invert). Null with a reason
    when there is no reference, no face is found, or dlib's models have not been fetched (:data:`MODELS_HINT`)."""

    def __init__(self, reference_dir: Path | None, compare_to_input: bool) -> None:
        self.reference_dir = reference_dir
        self.compare_to_input = compare_to_input
        self.available = models_available()

    def annotate(self, record: Any) -> Any:
        from mgan_cli.utils.pairing import find_by_stem

        if record.status != "ok" or not record.output:
            return record
        reference = (find_by_stem(self.reference_dir, Path(record.input).stem) if self.reference_dir is not None
                     else Path(record.input) if self.compare_to_input else None)
        if reference is None:
            distance, reason = None, ("no --reference" if self.reference_dir is None else
                                      f"no reference named {Path(record.input).stem}.* in {self.reference_dir}")
        elif not self.available:
            distance, reason = None, MODELS_HINT
        else:
            distance, reason = identity_of_files(Path(record.output), reference)
        record.metrics["identity"] = distance
        if reason:
            record.metrics["identity_reason"] = reason
        return record
