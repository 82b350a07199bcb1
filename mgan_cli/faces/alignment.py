"""Face crops as generators were trained on them: similarity transforms photo -> crop, warping and its inverse.

Each convention in :data:`ALIGNMENTS` turns 68 landmarks into a :class:`FaceTransform` (photo coordinates ->
crop coordinates, a similarity: rotation, uniform scale, translation):

* ``ffhq`` — FFHQ's recipe (NVlabs ffhq-dataset, ``recreate_aligned_images``): eye centres = means of the
  eye contours (landmarks 36-41, 42-47), mouth = mean of the corners 48 and 54;
  ``x = eye_to_eye - rot90(eye_to_mouth)``, normalised, scaled to ``max(2.0 |eye_to_eye|, 1.8 |eye_to_mouth|)``;
  ``y = rot90(x)``; centre ``c = eye_avg + 0.1 eye_to_mouth``; the crop is the square ``c ± x ± y``.
* ``celebahq`` — CelebA-HQ's (PGGAN ``dataset_tool.py create_celebahq``): the same construction from CelebA's
  five points (eye centres, mouth corners — here the same landmark means), whose eye/mouth averages carry an
  extra + 0.5 pixel, i.e. the crop is shifted by half a pixel of the photo.
* ``template`` — a least-squares similarity (Umeyama) that puts the eye centres, nose tip (30) and mouth
  corners on fixed positions given as fractions of the crop side (the registry entry's ``template``); used for
  generators trained on crops made that way (the DCGANs).

Departures from the dataset scripts, stated: one bicubic warp (after an antialiased integer shrink when the
face is much larger than the crop, as both recipes do) instead of their 4096-pixel intermediate; regions of
the crop outside the photo are filled by edge replication, without the recipes' blurred reflection padding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from mgan_cli.errors import ConfigurationError
from mgan_cli.utils.registry import Registry

LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
NOSE_TIP = 30
MOUTH_LEFT, MOUTH_RIGHT = 48, 54


@dataclass(frozen=True)
class FaceTransform:
    """``crop = matrix @ [x, y, 1]`` for photo point (x, y) (continuous coordinates); ``size`` = crop side."""

    matrix: np.ndarray  # [2, 3]
    size: int

    @property
    def scale(self) -> float:
        return float(math.hypot(self.matrix[0, 0], self.matrix[1, 0]))

    @property
    def rotation_degrees(self) -> float:
        return float(math.degrees(math.atan2(self.matrix[1, 0], self.matrix[0, 0])))

    def inverse(self) -> np.ndarray:
        """``[2, 3]`` crop -> photo."""
        linear = np.linalg.inv(self.matrix[:, :2])
        return np.concatenate([linear, -linear @ self.matrix[:, 2:]], axis=1)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Photo points ``[N, 2]`` -> crop points."""
        return points @ self.matrix[:, :2].T + self.matrix[:, 2]

    def to_json(self) -> dict[str, Any]:
        return {"matrix": [[round(float(v), 6) for v in row] for row in self.matrix], "size": self.size,
                "scale": round(self.scale, 6), "rotation_degrees": round(self.rotation_degrees, 3)}


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """``[5, 2]``: left eye centre, right eye centre, nose tip, left and right mouth corners (image left/right)."""
    if landmarks.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks [68, 2], got {landmarks.shape}")
    return np.stack([landmarks[LEFT_EYE].mean(0), landmarks[RIGHT_EYE].mean(0), landmarks[NOSE_TIP],
                     landmarks[MOUTH_LEFT], landmarks[MOUTH_RIGHT]])


def _rot90(v: np.ndarray) -> np.ndarray:
    return np.array([-v[1], v[0]])


def _quad_transform(eye_left: np.ndarray, eye_right: np.ndarray, mouth_avg: np.ndarray, size: int,
                    shift: float = 0.0) -> FaceTransform:
    eye_avg = (eye_left + eye_right) * 0.5 + shift
    mouth_avg = mouth_avg + shift
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - _rot90(eye_to_mouth)
    x = x / np.hypot(*x) * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = _rot90(x)
    centre = eye_avg + eye_to_mouth * 0.1
    corner = centre - x - y  # the crop's top-left corner; x runs along the crop's rows, y down its columns
    scale = size / (2.0 * np.hypot(*x))
    ux, uy = x / np.hypot(*x), y / np.hypot(*y)
    linear = scale * np.stack([ux, uy])
    return FaceTransform(np.concatenate([linear, (-linear @ corner)[:, None]], axis=1), size)


AlignmentFn = Callable[[np.ndarray, int, dict[str, Any]], FaceTransform]
ALIGNMENTS: Registry[AlignmentFn] = Registry("face alignment")


@ALIGNMENTS.register("ffhq")
def ffhq_alignment(landmarks: np.ndarray, size: int, options: dict[str, Any] | None = None) -> FaceTransform:
    points = five_points(landmarks)
    return _quad_transform(points[0], points[1], (points[3] + points[4]) * 0.5, size)


@ALIGNMENTS.register("celebahq")
def celebahq_alignment(landmarks: np.ndarray, size: int, options: dict[str, Any] | None = None) -> FaceTransform:
    points = five_points(landmarks)
    return _quad_transform(points[0], points[1], (points[3] + points[4]) * 0.5, size, shift=0.5)


def similarity_fit(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity ``[2, 3]`` mapping ``source`` points onto ``target`` (Umeyama 1991, no reflection)."""
    mean_s, mean_t = source.mean(0), target.mean(0)
    s, t = source - mean_s, target - mean_t
    cov = t.T @ s / len(source)
    u, d, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign) / (s**2).sum(1).mean())
    linear = scale * rotation
    return np.concatenate([linear, (mean_t - linear @ mean_s)[:, None]], axis=1)


@ALIGNMENTS.register("template")
def template_alignment(landmarks: np.ndarray, size: int, options: dict[str, Any] | None = None) -> FaceTransform:
    template = np.asarray((options or {}).get("template", []), dtype=np.float64)
    if template.shape != (5, 2):
        raise ConfigurationError("the 'template' alignment needs five [x, y] points (fractions of the crop side): "
                                 "eye centres, nose tip, mouth corners")
    return FaceTransform(similarity_fit(five_points(landmarks), template * size), size)


def face_transform(convention: str, landmarks: np.ndarray, size: int,
                   options: dict[str, Any] | None = None) -> FaceTransform:
    """The photo -> crop transform of ``convention`` (a name in :data:`ALIGNMENTS`) for a ``size`` crop."""
    try:
        align = ALIGNMENTS.get(convention)
    except KeyError as exc:
        raise ConfigurationError(str(exc.args[0])) from None
    return align(landmarks, size, options or {})


def _affine_coefficients(inverse: np.ndarray) -> tuple[float, ...]:
    """PIL's AFFINE data (output -> input) for a continuous-coordinate ``[2, 3]`` map, with Pillow's pixel-centre
    sampling (it samples input at ``a (x + 0.5) + b (y + 0.5) + c`` for output pixel x, y)."""
    return tuple(float(v) for v in inverse.reshape(-1))


def warp_to_crop(photo: np.ndarray, transform: FaceTransform) -> np.ndarray:
    """The ``size x size`` crop (uint8 RGB) of ``photo`` under ``transform``; bicubic, antialiased when shrinking."""
    image = Image.fromarray(photo)
    matrix = transform.matrix.copy()
    shrink = math.floor(0.5 / transform.scale) if transform.scale < 0.5 else 1
    if shrink > 1:  # both dataset recipes first shrink a large face by an integer factor, antialiased
        small = (max(1, round(image.width / shrink)), max(1, round(image.height / shrink)))
        factors = np.array([image.width / small[0], image.height / small[1]])
        image = image.resize(small, Image.Resampling.LANCZOS)
        matrix[:, :2] = matrix[:, :2] * factors[None, :]
    pad = transform.size  # edge-replicate so that crops reaching past the photo's border stay defined
    padded = np.pad(np.asarray(image), ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    matrix[:, 2] = matrix[:, 2] - matrix[:, :2] @ np.array([pad, pad], dtype=np.float64)
    inverse = FaceTransform(matrix, transform.size).inverse()
    crop = Image.fromarray(padded).transform((transform.size, transform.size), Image.Transform.AFFINE,
                                             _affine_coefficients(inverse), resample=Image.Resampling.BICUBIC)
    return np.asarray(crop)


def warp_to_photo(crop: np.ndarray, transform: FaceTransform, photo_size: tuple[int, int]) -> np.ndarray:
    """``crop`` (``[S, S, C]`` uint8 or float32) put back into a ``photo_size`` (width, height) canvas with the
    inverse transform (bicubic); pixels the crop does not cover are 0."""
    as_float = crop.dtype != np.uint8
    channels = crop.shape[2]
    out = []
    for c in range(channels):
        band = Image.fromarray(crop[:, :, c].astype(np.float32), mode="F")
        warped = band.transform(photo_size, Image.Transform.AFFINE, _affine_coefficients(transform.matrix),
                                resample=Image.Resampling.BICUBIC, fillcolor=0.0)
        out.append(np.asarray(warped, dtype=np.float32))
    result = np.stack(out, axis=2)
    return result if as_float else np.clip(np.round(result), 0, 255).astype(np.uint8)


def generator_alignment(generator: str, override: str | None = None) -> tuple[str, dict[str, Any]]:
    """``(convention, options)`` for ``--align faces`` with ``generator``: its registry entry's ``extra.alignment``
    (and ``extra.template``), or ``override``. A generator whose entry states none (not a face generator, or an
    imported one) needs ``override``."""
    from mgan_cli.weights.store import default_store

    store = default_store()
    extra = store.entries[generator].extra if generator in store.entries else {}
    convention = override or extra.get("alignment")
    if convention is None:
        raise ConfigurationError(f"--align faces: {generator!r} states no face alignment (not a face generator, or an "
                                 f"imported one); choose one with --face-alignment ({', '.join(ALIGNMENTS.names())})")
    if convention not in ALIGNMENTS:
        raise ConfigurationError(f"unknown face alignment {convention!r} (known: {', '.join(ALIGNMENTS.names())})")
    return convention, dict(extra)


def is_face_generator(generator: str) -> bool:
    """Whether the registry entry of ``generator`` states a face alignment (imported generators: unknown, False)."""
    from mgan_cli.weights.store import default_store

    entries = default_store().entries
    return generator in entries and "alignment" in entries[generator].extra
