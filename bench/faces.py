"""Faces in larger photos: detection rate, alignment error against the known placement, paste-back, CPU time.

    python -m bench.faces [--faces DIR] [--size 256]

Every photo of ``../shared/data/mganprior_examples/face`` (aligned 1024² faces, the paper's examples) is resized
to ``--size`` and drawn into larger grey canvases by known similarities (:data:`PLACEMENTS`: scaled, rotated,
offset). Because the examples are themselves aligned crops, the correct crop of a canvas is known exactly: the
inverse of the placement. For each canvas: the face is detected (dlib), aligned by FFHQ's recipe, and

* **detection**: exactly one face found, its box centre inside the placed face;
* **alignment error (known transform)**: the largest distance, over the crop's four corners, between where the
  computed crop puts them and where the inverse placement does, in % of the crop side;
* **alignment error (consistency)**: the same against the crop computed on the unplaced photo (how much
  placement moves the landmarks' result, independent of how well the examples fit FFHQ's recipe);
* **paste-back**: a crop (here the aligned crop with inverted colours, a stand-in for a restored face) pasted
  back; the number of pixels outside the crop's footprint that changed (must be 0), and of those inside;
* **seconds**: CPU time for detection + landmarks + alignment + paste-back per canvas (not restoration).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mgan_cli.faces.alignment import FaceTransform, face_transform, warp_to_crop, warp_to_photo
from mgan_cli.faces.detection import detect_faces
from mgan_cli.faces.paste import paste_back

#: (scale, degrees, x offset, y offset, canvas width, height): face -> canvas
PLACEMENTS = [
    (0.5, 0.0, 40.0, 60.0, 640, 480),
    (0.8, 15.0, 300.0, 40.0, 720, 480),
    (0.6, -25.0, 120.0, 200.0, 640, 560),
    (1.2, 8.0, 100.0, 30.0, 800, 600),
    (0.35, 0.0, 400.0, 300.0, 640, 480),
    (0.8, 35.0, 250.0, 20.0, 720, 560),
]


def similarity(scale: float, degrees: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(degrees)
    linear = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return np.concatenate([linear, [[tx], [ty]]], axis=1)


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    linear = np.linalg.inv(matrix[:, :2])
    return np.concatenate([linear, -linear @ matrix[:, 2:]], axis=1)


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    return np.concatenate([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]], axis=1)


def place(face: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    canvas = Image.new("RGB", size, (90, 90, 90))
    coefficients = tuple(invert_affine(matrix).reshape(-1))
    warped = Image.fromarray(face).transform(size, Image.Transform.AFFINE, coefficients, Image.Resampling.BICUBIC)
    alpha = Image.new("L", face.shape[1::-1], 255).transform(size, Image.Transform.AFFINE, coefficients)
    canvas.paste(warped, (0, 0), alpha)
    return np.asarray(canvas)


def corner_error(matrix: np.ndarray, expected: np.ndarray, side: int) -> float:
    corners = np.array([[0, 0], [side, 0], [0, side], [side, side]], dtype=np.float64)
    a = corners @ matrix[:, :2].T + matrix[:, 2]
    b = corners @ expected[:, :2].T + expected[:, 2]
    return float(np.hypot(*(a - b).T).max() / side * 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "data" / "mganprior_examples" / "face")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    side = args.size
    rows = []
    for path in sorted(args.faces.iterdir()):
        face = np.asarray(Image.open(path).convert("RGB").resize((side, side), Image.Resampling.LANCZOS))
        own = detect_faces(face)
        direct = face_transform("ffhq", own[0].landmarks, side) if own else None
        for scale, degrees, tx, ty, width, height in PLACEMENTS:
            placement = similarity(scale, degrees, tx, ty)
            canvas = place(face, placement, (width, height))
            started = time.perf_counter()
            found = detect_faces(canvas)
            row = {"photo": path.name, "placement": (scale, degrees), "faces": len(found)}
            centre = placement @ np.array([side / 2, side / 2, 1.0])
            hit = [f for f in found if f.box[0] <= centre[0] <= f.box[2] and f.box[1] <= centre[1] <= f.box[3]]
            row["detected"] = len(found) == 1 and len(hit) == 1
            if hit:
                transform = face_transform("ffhq", hit[0].landmarks, side)
                restored = 255 - warp_to_crop(canvas, transform)
                composite, _ = paste_back(canvas, restored, transform)
                row["seconds"] = time.perf_counter() - started
                row["error_known"] = corner_error(compose(transform.matrix, placement), np.eye(2, 3), side)
                if direct is not None:
                    row["error_consistency"] = corner_error(compose(transform.matrix, placement), direct.matrix, side)
                footprint = warp_to_photo(np.ones((side, side, 1), np.float32), FaceTransform(transform.matrix, side),
                                          (width, height))[:, :, 0] > 0
                changed = (composite != canvas).any(axis=2)
                row["changed_outside"] = int((changed & ~footprint).sum())
                row["changed_inside"] = int((changed & footprint).sum())
                row["outside"] = int((~footprint).sum())
            rows.append(row)
    detected = [r for r in rows if r["detected"]]
    print(f"canvases: {len(rows)} ({len(PLACEMENTS)} placements x {len(rows) // len(PLACEMENTS)} photos), "
          f"face {side}x{side} before placement")
    print(f"detection rate: {len(detected)}/{len(rows)} = {100 * len(detected) / len(rows):.1f}%  "
          f"(misses: {sorted({(r['photo'], r['placement']) for r in rows if not r['detected']})})")
    for key, name in [("error_known", "alignment error vs the known placement"),
                      ("error_consistency", "alignment error vs the unplaced photo's crop")]:
        values = np.array([r[key] for r in detected if key in r])
        print(f"{name}: mean {values.mean():.2f}%, median {np.median(values):.2f}%, max {values.max():.2f}% "
              f"of the crop side")
    print(f"paste-back: pixels changed outside the crop footprint: {sum(r['changed_outside'] for r in detected)} of "
          f"{sum(r['outside'] for r in detected)}; inside: {sum(r['changed_inside'] for r in detected)}")
    seconds = np.array([r["seconds"] for r in detected])
    print(f"CPU seconds per canvas (detect + landmarks + align + paste back): mean {seconds.mean():.3f}, "
          f"max {seconds.max():.3f}")
    by_placement = {}
    for r in detected:
        by_placement.setdefault(r["placement"], []).append(r["error_known"])
    for placement, errors in by_placement.items():
        print(f"  placement scale {placement[0]}, {placement[1]} deg: {len(errors)} detected, mean error "
              f"{np.mean(errors):.2f}%")


if __name__ == "__main__":
    main()
