"""Face detection and 68-point landmarks with dlib (``dlib-bin``); models come through the weight registry."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from mgan_cli.errors import ConfigurationError
from mgan_cli.weights.store import default_store

LANDMARKS_MODEL = "dlib-shape-predictor-68"
#: dlib's HOG detector finds faces of about 80x80 pixels and larger; smaller photos are upsampled first
MIN_DETECTABLE = 80
#: a photo without a face found is searched again upsampled while it stays under this many pixels
RETRY_PIXELS = 16_000_000


def dlib_module() -> Any:
    try:
        import dlib
    except ImportError as exc:  # a broken install: say what to do
        raise ConfigurationError("face alignment needs dlib: pip install dlib-bin") from exc
    return dlib


@dataclass(frozen=True)
class DetectedFace:
    """One face: its detector box ``(left, top, right, bottom)`` and 68 landmarks ``[68, 2]`` (x, y), both in
    continuous pixel coordinates of the photo; ``score`` is the detector's confidence."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float

    def to_json(self) -> dict[str, Any]:
        return {"box": [round(v, 2) for v in self.box], "score": round(self.score, 3)}


@functools.cache
def _detector() -> Any:
    return dlib_module().get_frontal_face_detector()


@functools.cache
def _predictor(path: str) -> Any:
    return dlib_module().shape_predictor(path)


def landmark_predictor() -> Any:
    """dlib's 68-point shape predictor (the model fetched and checksummed through the weight registry)."""
    return _predictor(str(default_store().path(LANDMARKS_MODEL)))


def _check_image(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"faces need a uint8 RGB array [H, W, 3], got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def landmarks_in(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The 68 landmarks ``[68, 2]`` (continuous coordinates) of the face in ``box`` of ``image``."""
    dlib = dlib_module()
    image = _check_image(image)
    rect = dlib.rectangle(round(box[0]), round(box[1]), round(box[2]) - 1, round(box[3]) - 1)
    shape = landmark_predictor()(image, rect)
    return np.array([[p.x + 0.5, p.y + 0.5] for p in shape.parts()], dtype=np.float64)


def detect_faces(image: np.ndarray, upsample: int | None = None) -> list[DetectedFace]:
    """Every face dlib's frontal detector finds in ``image`` (uint8 RGB), largest first.

    ``upsample``: how many times the detector doubles the image first (``None``: enough for the smallest
    side to reach 2 x :data:`MIN_DETECTABLE` pixels, at most 2). When no face is found, the search is repeated
    at twice the size (up to 2 doublings and :data:`RETRY_PIXELS`), so small faces in large photos are found."""
    image = _check_image(image)
    if upsample is None:
        upsample = 0
        while upsample < 2 and min(image.shape[:2]) * 2**upsample < 2 * MIN_DETECTABLE:
            upsample += 1
    rects, scores, _ = _detector().run(image, upsample, 0.0)
    while not len(rects) and upsample < 2 and image.shape[0] * image.shape[1] * 4**(upsample + 1) <= RETRY_PIXELS:
        upsample += 1  # faces smaller than ~80 px: look again at twice the size
        rects, scores, _ = _detector().run(image, upsample, 0.0)
    faces = []
    for rect, score in zip(rects, scores, strict=True):
        box = (float(rect.left()), float(rect.top()), float(rect.right() + 1), float(rect.bottom() + 1))
        faces.append(DetectedFace(box, landmarks_in(image, box), float(score)))
    faces.sort(key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
    return faces
