"""Semantic editing of multi-code inversions: move every code along a direction and re-render.

One image's inversion is its N codes ``[N, *code_shape]`` (in the inversion's latent space), importances
``[N, C]`` and upper latent (``[L - ℓ, w_dim]`` for StyleGANs, else ``None``). The frame at strength ``s``
renders ``upper(compose(lower(code_n + s·d)), upper')``:

* z codes (DCGAN, PGGAN, StyleGAN-z): ``d`` must be a z direction; the upper latent (if any) is kept.
* w / w+ codes: ``d`` must be a w direction. The codes render the style rows below ℓ; the rows from ℓ up
  come from the upper latent (one W+ tail per image), which an edit keeps, as the paper moves only the codes.
  So a W edit reaches rows ``0 … ℓ-1``; ``move_upper`` (``--edit-upper``) moves the upper latent's rows by
  the same step, so that the whole W+ stack moves (what a single-code W edit does; needed when the attribute
  lives in rows at or above ℓ). ``rows`` (``--edit-layers a-b``, inclusive, counted from 0 as w+ rows)
  limits the edit to those rows; w codes are then rendered as the identical w+ codes (each row a copy) so
  that single rows can move. Rows at or above ℓ are refused unless the upper latent moves (they would
  silently do nothing).

Importances never change, and strength 0 renders the inversion unchanged, bit for bit. Frames are
``[S, 3, R, R]`` in ~[-1, 1] (unclamped, as the generator renders).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mgan_cli.core.engine import MultiCodeModel
from mgan_cli.core.inversion import Inversion
from mgan_cli.errors import ConfigurationError, RenderError
from mgan_cli.generators.base import Generator

DEFAULT_STRENGTHS = (-3.0, -1.5, 0.0, 1.5, 3.0)


@dataclass(frozen=True)
class Direction:
    """A unit vector ``vector [D]`` in latent space ``space`` (``z`` or ``w``), named for reports."""

    vector: torch.Tensor
    space: str
    name: str

    def __post_init__(self) -> None:
        if self.vector.dim() != 1:
            raise ConfigurationError(f"direction {self.name}: expected a vector [D], got {tuple(self.vector.shape)}")
        if self.space not in ("z", "w"):
            raise ConfigurationError(f"direction {self.name}: space must be z or w, got {self.space!r}")


def parse_strengths(text: str) -> tuple[float, ...]:
    """``"-3,-1.5,0,1.5,3"`` -> ``(-3.0, -1.5, 0.0, 1.5, 3.0)``. Non-finite values are refused, and so are
    two strengths that would share a frame file (``face_<s>.png`` shows 6 significant digits: 0.1 and
    0.1000001 would both be ``face_0.1.png``).

    >>> parse_strengths("-2, 0,2")
    (-2.0, 0.0, 2.0)
    """
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigurationError(f"--strengths must be comma-separated numbers, got {text!r}") from None
    if not values:
        raise ConfigurationError("--strengths needs at least one number")
    for value in values:
        if not math.isfinite(value):
            raise ConfigurationError(f"--strengths: {value} is not a finite number")
    names: dict[str, float] = {}
    for value in values:
        name = strength_name(value)
        if name in names:
            raise ConfigurationError(f"--strengths: {names[name]:.10g} and {value:.10g} would share the frame file "
                                     f"<stem>_{name}.png; give strengths that differ in their first 6 significant "
                                     "digits, each once")
        names[name] = value
    return values


def strength_name(strength: float) -> str:
    """How a strength appears in a frame's file name: ``1.5``, ``-3``, ``0.1`` (6 significant digits)."""
    return f"{strength:g}"


def parse_rows(text: str, option: str = "--edit-layers") -> range:
    """``"a-b"`` (inclusive, from 0) or ``"a"`` -> ``range(a, b + 1)``; errors name ``option``, the flag it came
    from.

    >>> parse_rows("4-5"), parse_rows("3")
    (range(4, 6), range(3, 4))
    """
    first, _, last = text.partition("-")
    try:
        start, stop = int(first), int(last or first)
    except ValueError:
        raise ConfigurationError(f"{option} must look like 4-7 (w+ rows, from 0), got {text!r}") from None
    if start < 0 or stop < start:
        raise ConfigurationError(f"{option} {text}: need 0 <= first <= last")
    return range(start, stop + 1)


def check_compatible(direction: Direction, space: str, code_size: int) -> None:
    """A z direction edits z codes; a w direction edits w / w+ codes; the sizes must agree."""
    wanted = "z" if space == "z" else "w"
    if direction.space != wanted:
        raise ConfigurationError(
            f"direction {direction.name} lives in {direction.space.upper()} space but the codes are in {space} "
            f"(choose a {wanted.upper()}-space direction, or invert with --space "
            f"{'z' if direction.space == 'z' else 'w'})")
    if direction.vector.numel() != code_size:
        raise ConfigurationError(f"direction {direction.name} has {direction.vector.numel()} entries but the "
                                 f"codes have {code_size}")


def shift(generator: Generator, inversion: Inversion, direction: Direction, strength: float,
          rows: range | None = None, move_upper: bool = False) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """Codes, upper latent and render space of ``inversion`` moved by ``strength · direction``."""
    codes, upper, space = inversion.codes, inversion.upper_latent, inversion.space
    size = codes.shape[-1]
    check_compatible(direction, space, size)
    step = strength * direction.vector.to(codes.device, codes.dtype)
    if space == "z":
        if rows is not None:
            raise ConfigurationError("--edit-layers needs codes in w or w+ (style rows); these are z codes")
        if move_upper:
            raise ConfigurationError("--edit-upper needs codes in w or w+: a z direction cannot move w+ rows")
        return codes + step, upper, space
    total = int(getattr(generator, "num_layers", 0))
    if rows is None:
        rows = range(total)
    elif rows.stop > total:
        raise ConfigurationError(f"--edit-layers {rows.start}-{rows.stop - 1}: the generator has w+ rows 0-{total - 1}")
    elif rows.stop > inversion.layer and not move_upper and upper is not None:
        raise ConfigurationError(
            f"--edit-layers {rows.start}-{rows.stop - 1}: rows {max(rows.start, inversion.layer)}-{rows.stop - 1} "
            f"are at or above the composing layer {inversion.layer}, where the upper latent (kept by an edit) "
            f"renders them; add --edit-upper to move it too, or choose rows below {inversion.layer}")
    mask = torch.zeros(total, 1, dtype=codes.dtype, device=codes.device)
    mask[rows.start:rows.stop] = 1.0
    if space == "w" and rows != range(total):
        codes, space = codes[:, None, :].repeat(1, total, 1), "w+"
    codes = codes + step if space == "w" else codes + mask * step  # w: every row (rows not limited)
    if upper is not None and move_upper:
        upper = upper + mask[inversion.layer:] * step
    return codes, upper, space


@torch.no_grad()
def render_inversion(generator: Generator, inversion: Inversion) -> torch.Tensor:
    """The image ``[3, R, R]`` of one inversion, rendered alone (fp32): what strength 0 and saved latents give."""
    model = MultiCodeModel(generator, inversion.layer, inversion.space, inversion.composition)
    upper = None if inversion.upper_latent is None else inversion.upper_latent[None]
    return model(inversion.codes[None], inversion.alphas[None], upper).float()[0]


@torch.no_grad()
def render_frames(generator: Generator, inversion: Inversion, direction: Direction, strengths: Sequence[float],
                  rows: range | None = None, move_upper: bool = False) -> torch.Tensor:
    """The frames ``[S, 3, R, R]`` of ``inversion`` edited at each strength (see the module docstring)."""
    models: dict[str, MultiCodeModel] = {}
    frames = []
    for strength in strengths:
        if strength == 0:
            codes, upper, space = inversion.codes, inversion.upper_latent, inversion.space
        else:
            codes, upper, space = shift(generator, inversion, direction, strength, rows, move_upper)
        if space not in models:
            models[space] = MultiCodeModel(generator, inversion.layer, space, inversion.composition)
        batch_upper = None if upper is None else upper[None]
        frame = models[space](codes[None], inversion.alphas[None], batch_upper).float()[0]
        if not bool(torch.isfinite(frame).all()):
            raise RenderError(f"the frame at strength {strength:g} has NaN or infinite pixels (a strength too "
                              "large for this direction, or non-finite codes)")
        frames.append(frame)
    return torch.stack(frames)


@torch.no_grad()
def render_samples(generator: Generator, codes: torch.Tensor, space: str) -> torch.Tensor:
    """Render single codes ``[M, D]`` of the edit space (z, or w for style families) -> ``[M, 3, R, R]``."""
    if space == "w":
        return generator.render(codes, "w")  # type: ignore[operator]
    return generator(codes)


def strip(frames: torch.Tensor, gap: int = 2) -> torch.Tensor:
    """Frames ``[S, 3, R, R]`` in [-1, 1] side by side on white: ``uint8 [3, R, S·R + (S-1)·gap]``."""
    return strip_uint8(((frames.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu(), gap)


def strip_uint8(pixels: torch.Tensor, gap: int = 2) -> torch.Tensor:
    """uint8 frames ``[S, 3, R, R]`` side by side on white (see :func:`strip`)."""
    count, _, size, _ = pixels.shape
    canvas = torch.full((3, size, count * size + (count - 1) * gap), 255, dtype=torch.uint8)
    for i in range(count):
        canvas[:, :, i * (size + gap):i * (size + gap) + size] = pixels[i]
    return canvas


@torch.no_grad()
def preview_grid(generator: Generator, vectors: torch.Tensor, space: str, strengths: Sequence[float],
                 samples: torch.Tensor, gap: int = 2) -> torch.Tensor:
    """Rows = directions (``vectors [K, D]``), columns = strengths, one block of columns per sample code
    (``samples [M, D]`` in ``space``): ``uint8 [3, H, W]`` on white."""
    reference = next(iter(generator.parameters()))
    rows = []
    for vector in vectors:
        blocks = []
        for code in samples:
            moved = torch.stack([code + s * vector for s in strengths]).to(reference.device, reference.dtype)
            blocks.append(strip(render_samples(generator, moved, space), gap))
        block_gap = torch.full((3, blocks[0].shape[1], 4 * gap), 255, dtype=torch.uint8)
        rows.append(torch.cat([part for block in blocks for part in (block, block_gap)][:-1], dim=2))
    row_gap = torch.full((3, gap, rows[0].shape[2]), 255, dtype=torch.uint8)
    return torch.cat([part for row in rows for part in (row, row_gap)][:-1], dim=1)
