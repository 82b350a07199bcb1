"""What a run does with each image's inversion besides the restored image: generator tuning
(:mod:`mgan_cli.core.tuning`), saved latents (:mod:`mgan_cli.edit.latents`) and edit frames
(:mod:`mgan_cli.edit.frames`).

Files (beside ``OUT/<stem>.png``): ``OUT/latents/<stem>.safetensors``; ``OUT/frames/<stem>_<strength>.png``
(one per strength, e.g. ``face_-1.5.png``; the raw render x̂, strength 0 = the inversion) and
``OUT/strips/<stem>.png`` (the frames side by side). The report row gains ``latents``, ``frames``
(``[{strength, path}]``) and ``strip``, and ``tuned_steps`` when the generator was tuned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mgan_cli.core.tuning import TuningSettings
from mgan_cli.edit.frames import Direction, strength_name


@dataclass(frozen=True)
class EditRequest:
    """Render frames moved by ``strength · direction`` for each of ``strengths``; ``rows``: w+ rows only;
    ``move_upper``: the upper latent's rows move too (see :mod:`mgan_cli.edit.frames`)."""

    direction: Direction
    strengths: tuple[float, ...]
    rows: range | None = None
    move_upper: bool = False


@dataclass(frozen=True)
class RunExtras:
    """Per-image work after the inversion; the default does none of it."""

    tuning: TuningSettings = field(default_factory=TuningSettings)
    save_latents: bool = False
    edit: EditRequest | None = None
    generator_sha256: str | None = None  # recorded in saved latents

    @property
    def needed(self) -> bool:
        return self.tuning.steps > 0 or self.save_latents or self.edit is not None


def frame_name(stem: str, strength: float) -> str:
    """``face_-1.5.png``, ``face_0.png``, ``face_3.png``.

    >>> frame_name("a", -1.5), frame_name("a", 0.0), frame_name("a", 3.0)
    ('a_-1.5.png', 'a_0.png', 'a_3.png')
    """
    return f"{stem}_{strength_name(strength)}.png"


def frame_paths(output_dir: Path, stem: str, strengths: tuple[float, ...]) -> list[Path]:
    return [output_dir / "frames" / frame_name(stem, s) for s in strengths]


def strip_path(output_dir: Path, stem: str) -> Path:
    return output_dir / "strips" / f"{stem}.png"
