"""Restoring: observed tensors in, restored tensors out (no files). Owns the generator, the degradation,
the loss and the batching policy (fit the batch to free GPU memory; halve it on out-of-memory).

Tensors: ``observed`` float32 ``[B, 3, r, r]`` in [-1, 1]; ``masks`` float32 ``[B, 1, R, R]`` in [0, 1]
or ``None``; restored ``images`` uint8 ``[B, 3, R, R]`` on the CPU.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from mgan_cli.config.presets import Preset
from mgan_cli.core.degradations import Degradation, build_degradation
from mgan_cli.core.engine import EngineOptions, InversionResult, check_settings, invert, nonfinite_reason
from mgan_cli.core.inversion import Inversion
from mgan_cli.core.tuning import tune, tuned_parameters, tuning_autocast
from mgan_cli.edit.frames import render_frames, render_inversion
from mgan_cli.encoder import LoadedEncoder, WarmStart, encoder_initial_state, load_encoder, resolve_start
from mgan_cli.errors import RenderError
from mgan_cli.generators import Generator
from mgan_cli.run.batching import BatchChoice, MemoryProbe, choose_batch_size, cuda_memory_api, probe_memory
from mgan_cli.run.extras import RunExtras
from mgan_cli.run.failures import Failure, Stage
from mgan_cli.run.job import Job
from mgan_cli.utils.imageio import to_uint8

OUT_OF_MEMORY = ("out of memory for a single image; lower --codes, or use --precision bf16 or a device with "
                 "more memory")


def diverged_failure(step: int, precision: str = "fp32") -> Failure:
    """The failure of an image whose loss became inf or NaN at ``step`` (under fp16: a float16 overflow)."""
    return Failure(Stage.RESTORE, nonfinite_reason(step, precision))


@dataclass
class RestoredBatch:
    """Per image of a batch: uint8 ``images`` ``[B, 3, R, R]`` (CPU), final ``losses``, optimisation
    ``steps`` taken, the ``failures`` (``None`` where the image was restored) and each image's ``inversions``
    (codes, importances, upper latent on the CPU)."""

    images: torch.Tensor
    losses: list[float]
    steps: list[int]
    failures: list[Failure | None]
    after: list[AfterInversion] | None = None  # with extras: each image's inversion, tuning, frames
    inversions: list[Inversion] = dataclasses.field(default_factory=list)


@dataclass
class AfterInversion:
    """One image's inversion, its tuned parameters (``None`` untuned) and edit frames (uint8 ``[S, 3, R, R]``)."""

    inversion: Inversion
    tuned: dict[str, torch.Tensor] | None = None
    frames: torch.Tensor | None = None
    failure: Failure | None = None  # a frame could not be rendered (RenderError): the image fails


@dataclass
class Chunk:
    """Images ``start .. start + count`` of a call to :meth:`BatchRestorer.restore_all`, restored together."""

    start: int
    count: int
    outcome: RestoredBatch | Failure
    seconds_per_image: float


class BatchRestorer:
    """Restores batches of observed images for a preset on one device (see the module docstring).

    It moves the generator, the degradation and the loss to ``device`` once; ``engine`` holds the speed options
    (precision, compile, channels-last) and ``extras`` the per-image work after the inversion (tuning, edit
    frames). ``on_step(step, total, loss)`` reports progress through a batch's steps: its inversion steps (the mean
    loss of the batch), then each image's tuning steps (that image's loss); ``on_warning(message)`` warnings.
    """

    def __init__(self, generator: Generator, preset: Preset, device: torch.device | str = "cpu",
                 engine: EngineOptions | None = None, extras: RunExtras | None = None,
                 on_step: Callable[[int, int, float], None] | None = None,
                 on_warning: Callable[[str], None] | None = None) -> None:
        preset = resolve_start(preset)  # init auto (a preset that no Restorer or Job resolved): the encoder or random
        self.preset = preset
        self.device = torch.device(device)
        self.engine = engine or EngineOptions()
        self.extras = extras or RunExtras()
        self.generator = generator.to(self.device)
        check_settings(self.generator, preset.inversion)
        self.degradation: Degradation = build_degradation(preset.degradation).to(self.device)
        self.loss = preset.loss.build().to(self.device)
        self.observed_size = self.degradation.observed_size(self.generator.resolution, self.loss.smallest_input())
        self.settings = preset.inversion
        self.on_step = on_step
        self.on_warning = on_warning
        self.batch_limit = max(1, preset.batch_size)
        self.batch_choice: BatchChoice | None = None
        self._encoder: LoadedEncoder | None = None

    @classmethod
    def for_job(cls, job: Job, generator: Generator, on_step: Callable[[int, int, float], None] | None = None,
                on_warning: Callable[[str], None] | None = None) -> BatchRestorer:
        """The restorer of a file :class:`Job` (it reads only the job's preset, device, engine and extras)."""
        return cls(generator, job.preset, job.device, job.engine, job.extras, on_step, on_warning)

    @property
    def resolution(self) -> int:
        return self.generator.resolution

    @property
    def needs_mask(self) -> bool:
        return self.degradation.needs_mask

    # ---- batch sizing (policy: mgan_cli.run.batching; issue 19 item 7) ----
    def fit_batch_to_memory(self, inputs: int | None = None, requested: int | str | None = None) -> BatchChoice:
        """Set the batch limit by :func:`~mgan_cli.run.batching.choose_batch_size` from a one-image probe of two
        optimisation steps (CUDA only; out-of-memory later still halves it, see :meth:`restore_all`).

        ``requested``: ``"auto"``, a size, or ``None`` (= ``"auto"`` on CUDA once ``inputs`` is given; without
        ``inputs`` the preset's size stays the cap, as before). Returns the choice (for the report header)."""
        if requested is None and inputs is None:
            requested = self.batch_limit
        inputs = inputs if inputs is not None else self.batch_limit
        probe = self._probe_memory() if self.device.type == "cuda" else None
        choice = choose_batch_size(requested, self.batch_limit, inputs, self.device.type, probe)
        self.batch_limit, self.batch_choice = choice.batch_size, choice
        return choice

    def _probe_memory(self) -> MemoryProbe:
        device = self.device
        probe = torch.zeros(1, 3, self.observed_size, self.observed_size, device=device)
        mask = torch.zeros(1, 1, self.resolution, self.resolution, device=device)
        settings = dataclasses.replace(self.settings, iterations=2, early_stop_window=0, init="random")
        torch.cuda.synchronize(device)
        baseline = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        invert(self.generator, probe, self.degradation, self.loss, settings, [0],
               mask=mask if self.needs_mask else None, options=self.engine)
        return probe_memory(cuda_memory_api(), device, baseline, torch.cuda.max_memory_allocated(device))
    # ---- end of batch sizing ----

    def restore_all(self, observed: Sequence[torch.Tensor], masks: Sequence[torch.Tensor | None],
                    seeds: Sequence[int]) -> list[Chunk]:
        """Restore images ``[3, r, r]`` in chunks of the batch limit; on GPU out-of-memory, halve the limit
        (for the rest of the run too) and retry; a single image that does not fit fails."""
        chunks: list[Chunk] = []
        start = 0
        while start < len(observed):
            count = min(self.batch_limit, len(observed) - start)
            window = slice(start, start + count)
            started = time.perf_counter()
            try:
                outcome: RestoredBatch | Failure = self.restore(
                    torch.stack(list(observed[window])),
                    None if masks[start] is None else torch.stack(list(masks[window])),  # type: ignore[arg-type]
                    list(seeds[window]))
            except torch.OutOfMemoryError:
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if count > 1:
                    self.batch_limit = max(1, count // 2)
                    if self.on_warning:
                        self.on_warning(f"out of memory with {count} images per batch; retrying with "
                                        f"{self.batch_limit}")
                    continue
                outcome = Failure(Stage.RESTORE, OUT_OF_MEMORY)
            chunks.append(Chunk(start, count, outcome, (time.perf_counter() - started) / count))
            start += count
        return chunks

    def restore(self, observed: torch.Tensor, masks: torch.Tensor | None, seeds: Sequence[int]) -> RestoredBatch:
        """One batch: ``observed`` ``[B, 3, r, r]``, ``masks`` ``[B, 1, R, R]`` or None, one seed per image."""
        observed = observed.to(self.device)
        masks = masks.to(self.device) if masks is not None else None
        iterations = self.settings.iterations
        total = iterations + observed.shape[0] * self.extras.tuning.steps

        def on_progress(step: int, losses: torch.Tensor) -> None:
            if self.on_step:
                finite = losses[torch.isfinite(losses)]
                self.on_step(step, total, float(finite.mean()) if finite.numel() else math.nan)

        start = self.warm_start(observed, masks, seeds)
        result: InversionResult = invert(self.generator, observed, self.degradation, self.loss, self.settings,
                                         list(seeds), mask=masks, progress=on_progress, options=self.engine,
                                         warn=self.on_warning, initial_codes=None if start is None else start.codes,
                                         initial_upper=None if start is None else start.upper)
        inversions = self.inversions_of(result)
        after = self._after_inversion(result, inversions, observed, masks, seeds) if self.extras.needed else None
        images = self.degradation.finalize(result.images, self.observed_full(observed), masks)
        steps = result.steps.tolist() if result.steps is not None else [iterations] * len(seeds)
        losses = [float(v) for v in result.losses]
        diverged = result.diverged_at.tolist() if result.diverged_at is not None else [-1] * len(seeds)
        precision = self.engine.precision
        failures = [diverged_failure(at if at >= 0 else iterations, precision)
                    if at >= 0 or not math.isfinite(loss) else None
                    for at, loss in zip(diverged, losses, strict=True)]
        for b, extra in enumerate(after or []):
            failures[b] = failures[b] or extra.failure
        return RestoredBatch(to_uint8(images).cpu(), losses, steps, failures, after,
                             [inversion.to("cpu") for inversion in inversions])

    def inversions_of(self, result: InversionResult) -> list[Inversion]:
        """Each image's :class:`Inversion` in ``result`` (views of its tensors, on the device)."""
        settings = self.settings
        return [Inversion(result.codes[b].detach(), result.alphas[b].detach(),
                          None if result.upper_latent is None else result.upper_latent[b].detach(),
                          settings.layer, settings.space, settings.composition)
                for b in range(result.codes.shape[0])]

    def warm_start(self, observed: torch.Tensor, masks: torch.Tensor | None, seeds: Sequence[int]) -> WarmStart | None:
        """With ``init: encoder``, each image's starting codes predicted by the generator's encoder (image by
        image, so independent of batching); ``None`` for the seeded random start."""
        if self.settings.init != "encoder":
            return None
        return encoder_initial_state(self.encoder, self.generator, observed, self.degradation, self.settings, seeds,
                                     mask=masks)

    @property
    def encoder(self) -> LoadedEncoder:
        """The encoder of the preset's generator (``init: encoder``), loaded once; a missing or foreign one is
        refused in one line."""
        if self._encoder is None:
            self._encoder = load_encoder(self.preset.generator)
        return self._encoder

    def _after_inversion(self, result: InversionResult, inversions: Sequence[Inversion], observed: torch.Tensor,
                         masks: torch.Tensor | None, seeds: Sequence[int]) -> list[AfterInversion]:
        """Per image: tune a private copy of the generator (re-rendering the image and its loss in
        ``result``), and render the edit frames; see :mod:`mgan_cli.run.extras`."""
        extras = self.extras
        autocast = tuning_autocast(self.engine.precision)
        done = []
        for b, (seed, inversion) in enumerate(zip(seeds, inversions, strict=True)):
            generator, tuned_state = self.generator, None
            mask = None if masks is None else masks[b]
            if extras.tuning.steps > 0:
                generator = tune(self.generator, inversion, observed[b], self.degradation, self.loss,
                                 extras.tuning, seed, mask=mask, autocast_dtype=autocast,
                                 progress=self._tuning_progress(b, len(inversions)))
                tuned_state = tuned_parameters(generator, self.generator)
            # each image rendered alone, exactly as strength 0 and `mgan edit --from-latents` render it
            image = render_inversion(generator, inversion)[None]
            result.images[b] = image[0]
            if tuned_state is not None:
                with torch.no_grad():
                    result.losses[b] = self.loss(self.degradation(image, None if mask is None else mask[None]),
                                                 observed[b:b + 1])[0]
            frames = None
            if extras.edit is not None:
                edit = extras.edit
                try:
                    frames = to_uint8(render_frames(generator, inversion, edit.direction, edit.strengths,
                                                    edit.rows, edit.move_upper)).cpu()
                except RenderError as exc:
                    done.append(AfterInversion(inversion, tuned_state, None, Failure(Stage.RESTORE, str(exc))))
                    continue
            done.append(AfterInversion(inversion, tuned_state, frames))
        return done

    def _tuning_progress(self, index: int, count: int) -> Callable[[int, float], None] | None:
        """``on_step`` for the tuning of image ``index`` of ``count``: its steps follow the batch's inversion
        steps and the tuning of the images before it."""
        if self.on_step is None:
            return None
        report, steps, done = self.on_step, self.extras.tuning.steps, self.settings.iterations
        return lambda step, loss: report(done + index * steps + step, done + count * steps, loss)

    def observed_full(self, observed: torch.Tensor) -> torch.Tensor:
        """The observed images at the generator's resolution (what ``finalize`` blends with)."""
        if observed.shape[-1] == self.resolution:
            return observed
        return torch.nn.functional.interpolate(observed, size=self.resolution, mode="bicubic",
                                               align_corners=False).clamp(-1, 1)
