"""Reading images and masks faithfully or refusing them: every Pillow mode against a reference conversion
written here in numpy, EXIF orientation, animations, decompression bombs, damaged files, masks."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mgan_cli.errors import ImageInputError
from mgan_cli.utils.imageio import IMAGE_SUFFIXES, collect_inputs, decode_image, decode_mask, to_8bit

RNG = np.random.default_rng(7)


def png_bytes(pixels: np.ndarray, bit_depth: int, colour_type: int, extra: bytes = b"") -> bytes:
    """A PNG written by hand (no Pillow): 0 = grey, 2 = RGB, 4 = grey + alpha; 8 or 16 bits, big-endian."""
    height, width = pixels.shape[:2]
    dtype = ">u2" if bit_depth == 16 else "u1"
    raw = b"".join(b"\x00" + pixels[y].astype(dtype).tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + extra + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def decoded(path: Path) -> tuple[np.ndarray, list[str]]:
    result = decode_image(path)
    assert result.image.mode == "RGB"
    return np.asarray(result.image), result.notes


def test_16_bit_grey_png_keeps_its_range(tmp_path) -> None:
    values = RNG.integers(0, 65536, (12, 10), dtype=np.uint16)
    path = tmp_path / "grey16.png"
    path.write_bytes(png_bytes(values, 16, 0))
    pixels, notes = decoded(path)
    assert np.array_equal(pixels, grey_to_rgb((values // 256).astype(np.uint8)))
    assert "16-bit grey reduced to 8 bits" in notes
    # the case: a mid-grey 16-bit image is mid-grey, not white
    mid = np.full((4, 4), 20940, dtype=np.uint16)
    path.write_bytes(png_bytes(mid, 16, 0))
    assert decoded(path)[0].mean() == pytest.approx(20940 / 256, abs=1)


def test_16_bit_rgb_png_keeps_its_range(tmp_path) -> None:
    values = RNG.integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    path = tmp_path / "rgb16.png"
    path.write_bytes(png_bytes(values, 16, 2))
    assert np.array_equal(decoded(path)[0], (values // 256).astype(np.uint8))


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L"])
def test_16_bit_modes_in_memory(mode: str) -> None:
    values = RNG.integers(0, 65536, (5, 7), dtype=np.uint16)
    byte_order = ">" if mode == "I;16B" else "<"
    image = Image.frombytes(mode, (7, 5), values.astype(f"{byte_order}u2").tobytes())
    colour, alpha, _ = to_8bit(image, Path("x"))
    assert alpha is None and np.array_equal(np.asarray(colour), (values // 256).astype(np.uint8))


def test_32_bit_integer_tiff(tmp_path) -> None:
    values = RNG.integers(0, 65536, (6, 8)).astype(np.int32)
    path = tmp_path / "int32.tif"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I"
    assert np.array_equal(decoded(path)[0], grey_to_rgb((values // 256).astype(np.uint8)))
    Image.fromarray(values + 70_000).save(path)
    with pytest.raises(ImageInputError, match=r"int32.tif: 32-bit integer grey with values 7\d+\.\."):
        decode_image(path)


def test_float_tiff_in_0_1_and_refused_outside(tmp_path) -> None:
    values = RNG.random((6, 5)).astype(np.float32)
    path = tmp_path / "float.tif"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "F"
    expected = np.floor(values.astype(np.float64) * 255 + 0.5).astype(np.uint8)  # round half up, in numpy
    assert np.abs(decoded(path)[0].astype(int) - grey_to_rgb(expected)).max() == 0
    Image.fromarray(values * 1000).save(path)
    with pytest.raises(ImageInputError, match=r"values in \[.*\]; mgan reads float images as \[0, 1\]"):
        decode_image(path)
    values[0, 0] = np.nan
    Image.fromarray(values).save(path)
    with pytest.raises(ImageInputError, match="NaN"):
        decode_image(path)


def test_grey_alpha_png(tmp_path) -> None:
    grey_alpha = RNG.integers(0, 256, (6, 6, 2), dtype=np.uint8)
    path = tmp_path / "la.png"
    path.write_bytes(png_bytes(grey_alpha, 8, 4))
    pixels, notes = decoded(path)
    assert np.array_equal(pixels, grey_to_rgb(grey_alpha[..., 0]))
    assert any("alpha channel ignored" in n for n in notes)


def test_palette_with_transparency(tmp_path) -> None:
    palette = RNG.integers(0, 256, (16, 3), dtype=np.uint8)
    indices = RNG.integers(0, 16, (7, 9), dtype=np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette(palette.flatten().tolist())
    path = tmp_path / "p.png"
    image.save(path, transparency=3)
    assert Image.open(path).mode == "P" and "transparency" in Image.open(path).info
    pixels, notes = decoded(path)
    assert np.array_equal(pixels, palette[indices])  # the palette looked up, transparency dropped
    assert any("alpha" in n for n in notes) == bool((indices == 3).any())


def test_cmyk_tiff(tmp_path) -> None:
    cmyk = RNG.integers(0, 256, (5, 6, 4), dtype=np.uint8)
    path = tmp_path / "cmyk.tif"
    Image.fromarray(cmyk, "CMYK").save(path)
    pixels, notes = decoded(path)
    c, k = cmyk[..., :3].astype(np.float64), cmyk[..., 3:].astype(np.float64)
    expected = (255 - k) * (255 - c) / 255  # naive CMYK -> RGB, no colour management
    assert np.abs(pixels - expected).max() <= 1
    assert any("CMYK" in n and "colour management" in n for n in notes)


def test_unsupported_mode_and_format_are_refused(tmp_path) -> None:
    with pytest.raises(ImageInputError, match="colour mode LAB is not one mgan reads"):
        to_8bit(Image.new("LAB", (4, 4)), Path("x.tif"))
    eps = tmp_path / "a.eps"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n(pwned) print\n")
    with pytest.raises(ImageInputError, match="not an image in a format mgan reads"):
        decode_image(eps)  # Pillow would hand an EPS file to Ghostscript; mgan never opens that format


def test_exif_orientation_is_applied_and_noted(tmp_path) -> None:
    pixels = RNG.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "rotated.png"
    image.save(path, exif=exif)
    shown, notes = decoded(path)
    assert np.array_equal(shown, np.rot90(pixels, k=-1))
    assert any("EXIF orientation 6" in n for n in notes)
    jpeg = tmp_path / "rotated.jpg"
    image.save(jpeg, exif=exif, quality=95)
    assert decoded(jpeg)[0].shape == (10, 6, 3)


def _animated_gif(path: Path, frames: int = 3) -> list[np.ndarray]:
    images = [np.full((8, 8), 40 * (i + 1), dtype=np.uint8) for i in range(frames)]
    first, *rest = [Image.fromarray(a, "L") for a in images]
    first.save(path, save_all=True, append_images=rest, duration=50, loop=0)
    return images


def test_animation_uses_the_first_frame_and_folders_take_gifs(tmp_path) -> None:
    frames = _animated_gif(tmp_path / "anim.gif")
    pixels, notes = decoded(tmp_path / "anim.gif")
    assert np.array_equal(pixels, grey_to_rgb(frames[0]))
    assert "animated (3 frames): used the first frame" in notes
    assert ".gif" in IMAGE_SUFFIXES and collect_inputs([str(tmp_path)]) == [tmp_path / "anim.gif"]


def test_damaged_files_say_what_is_wrong(tmp_path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, "PNG")
    data = buffer.getvalue()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "crc.png").write_bytes(data[:29] + b"\0\0\0\0" + data[33:])  # IHDR's CRC zeroed
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_bytes(b"hello")
    expected = {"truncated": "truncated file", "crc": "a damaged PNG file: damaged file, bad checksum",
                "empty": "empty file", "text": "not an image in a format mgan reads"}
    for stem, reason in expected.items():
        with pytest.raises(ImageInputError) as info:
            decode_image(tmp_path / f"{stem}.png")
        message = str(info.value)
        assert message.startswith(f"{tmp_path / stem}.png: not a readable image: ") and reason in message
        assert "OSError" not in message and "\n" not in message


def test_decompression_bombs_are_refused_and_large_images_do_not_warn(tmp_path) -> None:
    from tests.helpers import run_bounded

    bomb = tmp_path / "bomb.png"
    data = png_bytes(np.zeros((1, 1), dtype=np.uint8), 8, 0)
    header = struct.pack(">IIBBBBB", 40_000, 40_000, 8, 0, 0, 0, 0)  # 1.6 G pixels claimed by ~70 bytes
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + header) & 0xFFFFFFFF)
    bomb.write_bytes(data[:16] + header + crc + data[33:])  # signature, IHDR length and type | data, CRC
    large = tmp_path / "large.png"
    Image.new("L", (60, 50), 128).save(large)  # legal, but over the limit set below
    code = f"""
from PIL import Image
Image.MAX_IMAGE_PIXELS = 2000  # 60x50 = 3000 pixels: over Pillow's warning limit, under its error limit
import mgan_cli.utils.imageio as imageio
imageio.MAX_PIXELS = 4000
from mgan_cli.errors import ImageInputError
print('large', imageio.decode_image(__import__('pathlib').Path({str(large)!r})).image.size)
Image.MAX_IMAGE_PIXELS = 89_478_485
imageio.MAX_PIXELS = 2 * 89_478_485
try:
    imageio.decode_image(__import__('pathlib').Path({str(bomb)!r}))
except ImageInputError as exc:
    print('bomb', exc)
"""
    status, output, _, _ = run_bounded(code, timeout=60, max_rss_mb=1500)
    assert status == 0, output
    assert "large (60, 50)" in output and "Warning" not in output
    assert f"bomb {bomb}: refused, more than 178956970 pixels" in output


# ---- masks ---------------------------------------------------------------------------------------------

def test_mask_hole_only_in_alpha_is_refused(tmp_path) -> None:
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[2:5, 2:5, 3] = 0  # the hole drawn as transparency, the colour black everywhere
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    with pytest.raises(ImageInputError, match="hole is only in its alpha channel"):
        decode_mask(tmp_path / "alpha.png")
    rgba[2:5, 2:5, :3] = 255  # hole also painted white: read from the grey values, alpha noted
    Image.fromarray(rgba, "RGBA").save(tmp_path / "both.png")
    mask = decode_mask(tmp_path / "both.png")
    assert np.array_equal(np.asarray(mask.image) == 255, rgba[..., 0] == 255)
    assert any("alpha channel ignored" in n for n in mask.notes)


def test_mask_marking_nothing_is_refused(tmp_path) -> None:
    Image.new("L", (8, 8), 0).save(tmp_path / "black.png")
    with pytest.raises(ImageInputError, match="marks no pixel as missing"):
        decode_mask(tmp_path / "black.png")


def test_16_bit_mask_keeps_its_range(tmp_path) -> None:
    values = np.zeros((8, 8), dtype=np.uint16)
    values[:4] = 65535
    values[4:, :4] = 32768
    (tmp_path / "m16.png").write_bytes(png_bytes(values, 16, 0))
    assert np.array_equal(np.asarray(decode_mask(tmp_path / "m16.png").image), (values // 256).astype(np.uint8))


# ---- end to end: notes in the records, one line per bad file ---------------------------------------------

def test_odd_inputs_in_a_run(shared_dir, tmp_path) -> None:
    from mgan_cli.cli import main
    from tests.helpers import celeba_face

    folder = tmp_path / "in"
    folder.mkdir()
    face = np.asarray(celeba_face(sorted((shared_dir / "data" / "celeba64").glob("*.jpg"))[0]))
    upright = Image.fromarray(np.ascontiguousarray(np.rot90(face, k=1)))  # stored rotated, EXIF says turn it
    exif = upright.getexif()
    exif[0x0112] = 6
    upright.save(folder / "rotated.png", exif=exif)
    (folder / "grey16.png").write_bytes(png_bytes(face[..., 0].astype(np.uint16) * 257, 16, 0))
    _animated_gif(folder / "anim.gif")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["invert", str(folder), "-o", str(out), "--json", "--iterations", "1",
                                       "--codes", "1", "--resize", "fit", "--perceptual-weight", "0"])
    assert result.exit_code == 1, result.output
    lines = {Path(j["input"]).stem: j for j in map(json.loads, result.stdout.splitlines())}
    assert set(lines) == {"rotated", "grey16", "anim", "broken"}
    assert any("EXIF orientation 6" in n for n in lines["rotated"]["notes"])
    assert "16-bit grey reduced to 8 bits" in lines["grey16"]["notes"]
    assert any("first frame" in n for n in lines["anim"]["notes"])
    assert lines["broken"]["status"] == "failed" and "damaged PNG file" in lines["broken"]["error"]
    warning = [line for line in result.stderr.splitlines() if "broken.png" in line]
    assert len(warning) == 1 and warning[0].count("broken.png") == 1, result.stderr
    restored = np.asarray(Image.open(out / "rotated.png"))
    assert restored.shape == (64, 64, 3)
