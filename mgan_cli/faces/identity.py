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
from typing import Any

import numpy as np

from mgan_cli.faces.detection import detect_faces, dlib_module, landmark_predictor
from mgan_cli.weight_store import default_store

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
