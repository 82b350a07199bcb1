"""mgan from Python: the public API that the command line is a thin layer on.

    import mgan_cli as mgan

    G = mgan.load_generator("dcgan64-digiface")
    restorer = mgan.Restorer(G, task="superres", scale=4, iterations=300)
    out = restorer(low, seed=0)             # low: [B, 3, 16, 16] floats in [0, 1]
    out.images                              # [B, 3, 64, 64] floats in [0, 1], on the CPU
    frames = mgan.edit(G, out.inversions[0], direction="sefa:1", strengths=[-3, 0, 3])

**Value ranges** (the one contract, checked here): images going in are float tensors ``[B, 3, r, r]`` with
values in [0, 1], uint8 tensors ``[B, 3, r, r]`` (0–255), or a list of Pillow images (mode RGB or L); images
coming out are float32 ``[B, 3, R, R]`` in [0, 1] on the CPU, quantised exactly as the PNG the command line
writes (``round(255·x) / 255``). Masks (inpaint) are ``[B, 1, R, R]`` (or ``[1, 1, R, R]`` for all images) of
floats in [0, 1] or bools (1 / True = missing pixel, as white in a mask file), uint8 (255 = missing), or Pillow
images of mode L. Anything else (another shape, dtype or range, a non-finite value, another size) is refused
with an :class:`~mgan_cli.errors.InputValueError` (a ``ValueError``) naming what was expected: nothing is
resized or converted silently. Inside the engine images are [-1, 1]; that never leaks out.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from mgan_cli.analysis.sweep import AnalysisOutcome, analyze_files
from mgan_cli.config.family_defaults import choose_preset
from mgan_cli.config.preflight import check_preset_fits
from mgan_cli.config.presets import Preset, apply_overrides
from mgan_cli.config.tasks import TASKS
from mgan_cli.core.engine import EngineOptions
from mgan_cli.core.inversion import Inversion
from mgan_cli.core.tuning import TuningSettings
from mgan_cli.edit import boundaries, latents
from mgan_cli.edit import directions as directions_lib
from mgan_cli.edit.directions import Directions
from mgan_cli.edit.frames import Direction, render_frames
from mgan_cli.encoder.warm_start import auto_start_note, recipe_tuning, resolve_start
from mgan_cli.errors import ConfigurationError, InputValueError
from mgan_cli.generators import Generator
from mgan_cli.run.extras import RunExtras
from mgan_cli.run.files import FilesOptions, FilesOutcome, restore_files
from mgan_cli.run.job import RunEvents, image_seed
from mgan_cli.run.restoring import BatchRestorer
from mgan_cli.utils.devices import resolve_device
from mgan_cli.utils.imageio import to_tensor, to_uint8
from mgan_cli.weights.importing import generator_identity, sniff_format
from mgan_cli.weights.loading import load_generator as load_named_generator
from mgan_cli.weights.loading import read_generator

#: what :class:`Restorer` accepts as images: ``[B, 3, r, r]`` float in [0, 1] or uint8, or Pillow images
Images = torch.Tensor | Sequence[Image.Image]
#: ``progress(step, total, loss)``: a batch's inversion steps (mean loss of the batch), then each image's tuning steps
Progress = Callable[[int, int, float], None]


def load_generator(name_or_path: str | os.PathLike[str], *, device: torch.device | str = "cpu",
                   format: str = "auto") -> Generator:
    """A frozen generator on ``device``: a registry entry (fetched and verified), a generator imported with
    ``mgan weights import``, or a file (or imported folder) of any supported format, read through the safe
    readers (``format``: a reader name as ``mgan weights import --format`` takes it; ``auto`` tells it from the
    file). A generator read from a file has no name, so :class:`Restorer` needs ``preset=`` for it."""
    target = resolve_device(str(device))
    path = Path(name_or_path)
    if isinstance(name_or_path, os.PathLike) or path.exists():
        generator = read_generator(path, sniff_format(path) if format == "auto" else format)
    else:
        generator = load_named_generator(str(name_or_path))
    return generator.to(target)


@dataclass(frozen=True)
class Restoration:
    """What :class:`Restorer` returns for a batch of B images (lists are per image, in input order).

    ``images`` float32 ``[B, 3, R, R]`` in [0, 1] on the CPU: exactly the pixels the command line writes as
    PNG (rows of failed images are NaN). ``inversions[i]``: image i's codes, importances, upper latent, layer
    and space (what ``--save-latents`` stores; ``None`` where it failed). ``losses``, ``steps`` (optimisation
    steps taken; fewer with early stopping), ``failed[i]`` (``None``, or the one-line reason, e.g. a diverged
    optimisation: it fails alone), the per-image ``seeds`` used, and ``tuned[i]``: image i's tuned generator
    parameters (``tune_steps`` > 0; what ``--save-latents`` stores with them), else ``None``.
    """

    images: torch.Tensor
    inversions: list[Inversion | None]
    losses: list[float]
    steps: list[int]
    failed: list[str | None]
    seeds: list[int]
    tuned: list[dict[str, torch.Tensor] | None] = dataclasses.field(default_factory=list)


class Restorer:
    """Restores batches of images with the multi-code prior: one task, one resolved preset, one device.

    ``generator`` is a :class:`~mgan_cli.generators.Generator` (from :func:`load_generator`) or a name.
    The preset is resolved exactly as the command line resolves it: ``preset`` (a name, a YAML file or a
    :class:`~mgan_cli.config.presets.Preset`), else the generator's built-in preset for ``task``, else the
    per-family defaults; then ``overrides`` (the task flags' names: ``codes``, ``layer``, ``iterations``, ``lr``,
    ``scale``, ``seed``, ``batch_size``, ...), each checked by the same schema as its flag. The generator,
    loss and degradation move to ``device`` once; a restorer can be called any number of times.
    ``init="encoder"`` starts each image from the generator's encoder (``mgan encoder train``); ``tune_steps``
    tunes a private copy of the generator per image after the inversion (``--tune-generator``; ``tune_layers``:
    ``all`` or ``upper``), and each image's tuned weights come back in :attr:`Restoration.tuned`; left unset, the
    preset's encoder recipe decides (``encoder_tune_steps`` with the encoder start, else no tuning).
    """

    def __init__(self, generator: Generator | str | None, task: str = "invert", *,
                 preset: str | os.PathLike[str] | Preset | None = None, device: torch.device | str = "auto",
                 precision: str = "auto", compile: str = "off", channels_last: bool | None = None,
                 tune_steps: int | None = None, tune_layers: str | None = None, **overrides: Any) -> None:
        name = generator if isinstance(generator, str) or generator is None else generator.weights_name
        if preset is None and isinstance(generator, Generator) and name is None:
            raise ConfigurationError("this generator was read from a file, so it has no built-in preset: pass "
                                     "preset=NAME_OR_FILE, or import it with `mgan weights import FILE --name N`")
        TASKS.get(task)  # an unknown task is refused with the known ones
        if isinstance(preset, Preset):
            if name is not None and name != preset.generator:
                raise ConfigurationError(f"preset {preset.name!r} is for {preset.generator}, not {name}")
            chosen = preset
        else:
            chosen = choose_preset(task, None if preset is None else str(preset), name)
        resolved = apply_overrides(chosen, **overrides)
        if resolved.task != task:
            raise ConfigurationError(f"preset {resolved.name!r} is for `mgan {resolved.task}`, not `mgan {task}`")
        named = not isinstance(generator, Generator) or generator.weights_name is not None
        if named:
            check_preset_fits(resolved)  # layer, space, scale against the named generator: refused before loading
        # auto: the encoder where trained, and its recipe unless tuning is switched off (tune_steps=0)
        requested, resolved = resolved, resolve_start(resolved, named=named, tunes=tune_steps != 0)
        #: one line when ``init: auto`` fell back to random codes for want of an encoder (else None)
        self.start_note = auto_start_note(requested, resolved) if named else None
        self.task = TASKS.get(task)
        self.device = resolve_device(str(device))
        self.engine = EngineOptions.for_device(self.device, precision, compile, channels_last)
        self._preset = resolved
        self._requested, self._named = requested, named
        self._extras = RunExtras(recipe_tuning(resolved, tune_steps, tune_layers))
        self._model = generator if isinstance(generator, Generator) else None
        self._restorer: BatchRestorer | None = None

    @property
    def _batches(self) -> BatchRestorer:
        """The batch restorer, built on first use (the generator is loaded once, when first needed)."""
        if self._restorer is None:
            model = self._model if self._model is not None else load_named_generator(self._preset.generator)
            self._restorer = BatchRestorer(model, self._preset, self.device, self.engine, self._extras)
        return self._restorer

    @property
    def preset(self) -> Preset:
        """The resolved preset (after overrides)."""
        return self._preset

    @property
    def tuning(self) -> TuningSettings:
        """The generator tuning each image gets after its inversion (``steps`` 0: none)."""
        return self._extras.tuning

    @property
    def generator(self) -> Generator:
        """The generator, on :attr:`device`."""
        return self._batches.generator

    @property
    def observed_size(self) -> int:
        """The side r of the images this restorer observes (``resolution / scale`` for superres)."""
        return self._batches.observed_size

    @property
    def resolution(self) -> int:
        """The side R of the restored images."""
        return self._batches.resolution

    def __call__(self, observed: Images, mask: Images | None = None, *, seed: int | Sequence[int] | None = None,
                 names: Sequence[str] | None = None, progress: Progress | None = None) -> Restoration:
        """Restore ``observed`` (see the module docstring for types and ranges); ``mask`` for inpaint only.

        Seeds: image i starts from ``seeds[i]`` when ``seed`` is a sequence; from an int (default: the preset's
        seed) each image's seed is derived from it and ``names[i]`` (default ``"i"``) exactly as the command
        line derives it from ``--seed`` and the file name, so ``names=["a.png"]`` reproduces
        ``mgan TASK a.png``. Batches are split to fit memory (halved on out-of-memory), as the CLI does.
        """
        images = _observed_batch(observed, self.observed_size)
        count = images.shape[0]
        masks = self._mask_batch(mask, count)
        seeds = self._seeds(seed, names, count)
        self._batches.on_step = progress
        chunks = self._batches.restore_all(list(images), masks, seeds)
        restored = torch.full((count, 3, self.resolution, self.resolution), float("nan"))
        inversions: list[Inversion | None] = [None] * count
        losses, steps = [float("nan")] * count, [0] * count
        failed: list[str | None] = [None] * count
        tuned: list[dict[str, torch.Tensor] | None] = [None] * count
        for chunk in chunks:
            rows = range(chunk.start, chunk.start + chunk.count)
            if not hasattr(chunk.outcome, "images"):  # a Failure: the whole chunk did not fit
                for i in rows:
                    failed[i] = str(chunk.outcome)
                continue
            batch = chunk.outcome
            for j, i in enumerate(rows):
                losses[i], steps[i] = batch.losses[j], batch.steps[j]  # type: ignore[union-attr]
                failure = batch.failures[j]  # type: ignore[union-attr]
                if failure is not None:
                    failed[i] = str(failure)
                    continue
                restored[i] = batch.images[j].float() / 255  # type: ignore[union-attr]
                inversions[i] = batch.inversions[j]  # type: ignore[union-attr]
                if batch.after is not None:  # type: ignore[union-attr]
                    tuned[i] = batch.after[j].tuned  # type: ignore[union-attr]
        return Restoration(restored, inversions, losses, steps, failed, seeds, tuned)

    def restore_files(self, inputs: Sequence[str | os.PathLike[str]], output_dir: str | os.PathLike[str], *,
                      events: RunEvents | None = None, **options: Any) -> FilesOutcome:
        """Run the whole file pipeline into ``output_dir``: images, run store, report.json/csv, index.html,
        faces. ``inputs`` are files and folders; ``options`` are the fields of
        :class:`~mgan_cli.run.files.FilesOptions` (``reference_dir``, ``mask``, ``resize``, ``recursive``,
        ``overwrite``, ``align``, ``paste_back``, ``face_alignment``, ``extras``, ...). ``events`` receives
        progress, each finished record and warnings. Raises :class:`~mgan_cli.run.files.RunInterrupted` on an
        interrupt (what finished is recorded; rerunning resumes)."""
        unknown = sorted(set(options) - {f.name for f in FilesOptions.__dataclass_fields__.values()})
        if unknown:
            raise ConfigurationError(f"restore_files: unknown option {unknown[0]!r}")
        options.setdefault("extras", self._extras)  # this restorer's tuning unless the call says otherwise
        for key in ("reference_dir", "mask"):
            if options.get(key) is not None:
                options[key] = Path(options[key])
        return restore_files(self.task, self.preset, [Path(i) for i in inputs], Path(output_dir),
                             FilesOptions(**options), device=self.device, engine=self.engine,
                             generator=lambda: self.generator, events=events)

    def analyze_files(self, inputs: Sequence[str | os.PathLike[str]], output_dir: str | os.PathLike[str], *,
                      layers: str | None = None, codes: str | None = None,
                      contributions: tuple[int, int] | None = None, events: RunEvents | None = None,
                      on_pair: Callable[[int, int, int, int], None] | None = None, **options: Any) -> AnalysisOutcome:
        """The paper's layer analysis on ``inputs`` into ``output_dir`` (what ``mgan analyze`` runs): one run per
        (layer ℓ, codes N) pair of ``layers`` × ``codes`` (texts as the flags take them: ``"1-4"``,
        ``"1,5,10,20,30"``), each with this restorer's preset otherwise; ``contributions=(ℓ, N)`` also draws which
        code explains which region. ``options``: ``reference_dir``, ``mask``, ``resize``, ``recursive``,
        ``overwrite``, ``stdin_lines``, ``shard`` (``"I/N"``). ``on_pair(index, total, layer, codes)`` before each
        pair."""
        # the sweep does not tune, so an encoder recipe that relies on tuning gives way to the preset's iterations
        preset = resolve_start(self._requested, named=self._named, tunes=False)
        return analyze_files(self.task, preset, [Path(i) for i in inputs], Path(output_dir),
                             lambda: self.generator, device=self.device, engine=self.engine, layers=layers,
                             codes=codes, contributions=contributions, events=events, on_pair=on_pair, **options)

    def _seeds(self, seed: int | Sequence[int] | None, names: Sequence[str] | None, count: int) -> list[int]:
        if seed is not None and not isinstance(seed, int):
            seeds = [int(s) for s in seed]
            if len(seeds) != count:
                raise InputValueError(f"seed: expected {count} per-image seeds, got {len(seeds)}")
            return seeds
        if names is not None and len(names) != count:
            raise InputValueError(f"names: expected {count} names, got {len(names)}")
        base = self.preset.seed if seed is None else seed
        return [image_seed(base, name) for name in (names or [str(i) for i in range(count)])]

    def _mask_batch(self, mask: Images | None, count: int) -> list[torch.Tensor | None]:
        if not self._batches.needs_mask:
            if mask is not None:
                raise InputValueError(f"mask: task {self.task.name} takes no mask")
            return [None] * count
        if mask is None:
            raise InputValueError(f"mask: task {self.task.name} needs a mask [B, 1, {self.resolution}, "
                                  f"{self.resolution}] (1 = missing pixel)")
        masks = _mask_batch(mask, self.resolution)
        if masks.shape[0] not in (1, count):
            raise InputValueError(f"mask: expected 1 or {count} masks, got {masks.shape[0]}")
        masks = masks.expand(count, -1, -1, -1)
        if bool((masks.flatten(1).amax(dim=1) == 0).any()):
            raise InputValueError("mask: a mask marks no pixel as missing (1 = missing)")
        return list(masks)


def _size_error(what: str, expected: int, got: tuple[int, ...]) -> InputValueError:
    return InputValueError(f"{what}: expected [B, 3, {expected}, {expected}], got {list(got)} (nothing is resized: "
                           f"resize the images, or use the CLI's --resize crop|fit)")


def _observed_batch(observed: Images, size: int) -> torch.Tensor:
    """Checked images -> float32 ``[B, 3, size, size]`` in [-1, 1] (the engine's range)."""
    if isinstance(observed, torch.Tensor):
        if observed.dim() != 4 or observed.shape[1] != 3:
            raise InputValueError(f"images: expected a batch [B, 3, {size}, {size}], got {list(observed.shape)}")
        if observed.shape[0] == 0:
            raise InputValueError("images: the batch is empty")
        if tuple(observed.shape[2:]) != (size, size):
            raise _size_error("images", size, tuple(observed.shape))
        pixels = observed.detach().cpu()
        if pixels.dtype == torch.uint8:
            return pixels.float() / 127.5 - 1.0  # as the CLI's PNG decoding: u / 127.5 - 1 in float32
        if not pixels.is_floating_point():
            raise InputValueError(f"images: expected float values in [0, 1] or uint8, got dtype {pixels.dtype}")
        pixels = pixels.float()
        if not bool(torch.isfinite(pixels).all()) or float(pixels.min()) < 0 or float(pixels.max()) > 1:
            raise InputValueError(f"images: float values must lie in [0, 1], got [{float(pixels.min()):g}, "
                                  f"{float(pixels.max()):g}] (from [-1, 1]: x / 2 + 0.5; from 0–255: pass uint8)")
        return pixels * 2 - 1
    if isinstance(observed, Sequence) and observed and all(isinstance(i, Image.Image) for i in observed):
        tensors = []
        for index, image in enumerate(observed):
            if image.mode not in ("RGB", "L"):
                raise InputValueError(f"images[{index}]: expected a Pillow image of mode RGB or L, got {image.mode}")
            if image.size != (size, size):
                raise InputValueError(f"images[{index}]: expected {size}x{size}, got {image.size[0]}x{image.size[1]}"
                                      " (nothing is resized)")
            tensors.append(to_tensor(image.convert("RGB")))
        return torch.stack(tensors)
    raise InputValueError(f"images: expected a tensor [B, 3, {size}, {size}] (float in [0, 1] or uint8) or a "
                          f"non-empty list of Pillow images, got {type(observed).__name__}")


def _mask_batch(mask: Images, size: int) -> torch.Tensor:
    """Checked masks -> float32 ``[B, 1, size, size]`` in [0, 1] (1 = missing)."""
    if isinstance(mask, torch.Tensor):
        if mask.dim() != 4 or mask.shape[1] != 1 or tuple(mask.shape[2:]) != (size, size):
            raise InputValueError(f"mask: expected [B, 1, {size}, {size}] (or [1, 1, {size}, {size}] for every "
                                  f"image), got {list(mask.shape)}")
        values = mask.detach().cpu()
        if values.dtype == torch.bool:
            return values.float()
        if values.dtype == torch.uint8:
            return values.float() / 255.0
        if not values.is_floating_point():
            raise InputValueError(f"mask: expected float in [0, 1], bool or uint8, got dtype {values.dtype}")
        values = values.float()
        if not bool(torch.isfinite(values).all()) or float(values.min()) < 0 or float(values.max()) > 1:
            raise InputValueError("mask: float values must lie in [0, 1] (1 = missing pixel)")
        return values
    if isinstance(mask, Image.Image):
        mask = [mask]
    if isinstance(mask, Sequence) and mask and all(isinstance(i, Image.Image) for i in mask):
        tensors = []
        for index, image in enumerate(mask):
            if image.mode != "L" or image.size != (size, size):
                raise InputValueError(f"mask[{index}]: expected a {size}x{size} Pillow image of mode L (white = "
                                      f"missing), got {image.size[0]}x{image.size[1]} {image.mode}")
            tensors.append(to_tensor(image))
        return torch.stack(tensors)
    raise InputValueError(f"mask: expected a tensor [B, 1, {size}, {size}] or Pillow images of mode L, got "
                          f"{type(mask).__name__}")


def directions(generator: Generator, method: str = "sefa", n: int = 8, *, layer: int | None = None,
               rows: range | None = None) -> Directions:
    """``n`` semantic directions of ``generator`` by ``method`` (``sefa``: closed form; ``pca``: GANSpace), most
    important first: ``.vectors`` ``[n, D]`` (orthonormal rows) in ``.space`` (z, or w for StyleGANs)."""
    return directions_lib.compute(generator, method, n, layer=layer, rows=rows)


def edit(generator: Generator, inversion: Inversion, direction: str | Direction = "sefa:0",
         strengths: Sequence[float] = (-3.0, 0.0, 3.0), *, rows: range | None = None,
         move_upper: bool = False) -> torch.Tensor:
    """Frames of ``inversion`` with every code moved by ``s · direction`` for each strength s: float32
    ``[S, 3, R, R]`` in [0, 1] on the CPU, quantised as the PNGs ``mgan edit`` writes (strength 0 renders the
    inversion unchanged). ``direction``: a :class:`~mgan_cli.edit.frames.Direction`, or a spec as
    ``--direction`` takes it (``sefa:K``, ``pca:K``, a registry boundary, ``FILE.npy[:K]``)."""
    values = [float(s) for s in strengths]
    if not values or not all(torch.isfinite(torch.tensor(values))):
        raise InputValueError(f"strengths: expected finite numbers, got {list(strengths)}")
    if isinstance(direction, str):
        default_space = "z" if inversion.space == "z" else "w"
        direction = boundaries.resolve(direction, generator.weights_name or "", default_space, lambda: generator)
    device = next(iter(generator.parameters()), torch.zeros(())).device
    frames = render_frames(generator, inversion.to(device), direction, values, rows, move_upper)
    return to_uint8(frames).cpu().float() / 255


def save_latents(path: str | os.PathLike[str], inversion: Inversion, generator: Generator | str) -> None:
    """Write ``inversion`` as ``mgan edit --from-latents`` reads it (safetensors, written atomically), naming the
    generator (it must have a name: a registry entry or an imported generator) and its weights' sha256."""
    name = generator if isinstance(generator, str) else generator.weights_name
    if name is None:
        raise ConfigurationError("save_latents: the generator has no name (read from a file); import it with "
                                 "`mgan weights import FILE --name N` and load it by that name")
    latents.save(Path(path), inversion, name, generator_identity(name)[2])


def load_latents(path: str | os.PathLike[str], generator: Generator | str | None = None) -> Inversion:
    """The inversion in ``path``; with ``generator``, latents made with another generator (or other weights under
    the same name) are refused."""
    name = generator if isinstance(generator, str) or generator is None else generator.weights_name
    sha = generator_identity(name)[2] if name else None
    return latents.load(Path(path), name, sha).inversion


__all__ = ["Restoration", "Restorer", "directions", "edit", "load_generator", "load_latents", "save_latents"]

