"""FLOP counting of one optimisation step, and the device peak it is compared with.

:func:`count_flops` runs a callable (one real step: forward *and* backward) under
``torch.utils.flop_counter.FlopCounterMode``, which counts the matmuls and convolutions of both passes
(for the generator and VGG, whose weights need no gradient, the backward is the input gradient only;
the counter honours that). Element-wise work (activations, normalisation, the optimiser) is not counted,
so achieved FLOP/s is a lower bound on the work done.

:func:`device_peak` states the peak the achieved FLOP/s are divided by: on CUDA from :data:`GPU_PEAKS`
(dense, no sparsity; keyed by ``torch.cuda.get_device_name()``), on the CPU from a fp32 matmul
micro-benchmark measured when the benchmark starts (:func:`measure_cpu_peak`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

#: (substring of the CUDA device name, {precision: dense peak FLOP/s}), first match wins. fp32 is the
#: non-tensor-core rate; cuDNN convolutions may use TF32 tensor cores (``torch.backends.cudnn.allow_tf32``
#: is on by default), so an fp32 fraction above 1 is possible. bf16/fp16 are the dense tensor-core rates.
GPU_PEAKS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H200", {"fp32": 67e12, "bf16": 989e12, "fp16": 989e12}),
    ("H100 PCIe", {"fp32": 51e12, "bf16": 756e12, "fp16": 756e12}),
    ("H100 NVL", {"fp32": 60e12, "bf16": 835e12, "fp16": 835e12}),
    ("H100", {"fp32": 67e12, "bf16": 989e12, "fp16": 989e12}),  # SXM ("NVIDIA H100 80GB HBM3")
    ("A100", {"fp32": 19.5e12, "bf16": 312e12, "fp16": 312e12}),
    ("L40S", {"fp32": 91.6e12, "bf16": 362e12, "fp16": 362e12}),
    ("A10", {"fp32": 31.2e12, "bf16": 125e12, "fp16": 125e12}),
)


@dataclass(frozen=True)
class Peak:
    """A device's assumed peak FLOP/s for a precision, and where the number comes from."""

    flops: float | None
    source: str


def _conv_backward_flops(grad_out_shape: list[int], x_shape: list[int], w_shape: list[int], _bias: object,
                         _stride: object, _padding: object, _dilation: object, transposed: bool,
                         _output_padding: object, _groups: object, output_mask: list[bool], *_: object,
                         **__: object) -> int:
    """Each requested gradient (input, weight) of a convolution costs what its forward costs.

    torch's own formula over-counts grouped convolutions (a group-G conv's backward counted ~(G+1)/2 times
    the G separate convs'), which StyleGAN2's modulated convolutions use with G = batch.
    """
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def count_flops(step: Callable[[], object]) -> int:
    """Matmul/convolution FLOPs of ``step()`` (forward and backward), counted while it runs once."""
    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward:
                                                             _conv_backward_flops})
    with counter:
        step()
    return int(counter.get_total_flops())


@functools.cache
def measure_cpu_peak(size: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """FLOP/s of the best of ``repeats`` ``size``² matmuls in ``dtype`` with torch's current thread count."""
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    for _ in range(2):  # warm-up (thread pool, caches, clock)
        torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def gpu_peak(name: str, precision: str) -> Peak:
    """The table's peak for the CUDA device called ``name`` (``None`` when the device is not in the table)."""
    for key, peaks in GPU_PEAKS:
        if key in name:
            return Peak(peaks.get(precision), f"{key} {precision} dense, from the datasheet")
    return Peak(None, f"{name} not in bench/flops.py:GPU_PEAKS")


def device_peak(device: torch.device, precision: str, cpu_peak: float | None = None) -> Peak:
    """Peak FLOP/s of ``device`` at ``precision`` (``cpu_peak``: a measured fp32 matmul rate)."""
    if device.type == "cuda":
        return gpu_peak(torch.cuda.get_device_name(device), precision)
    if precision == "bf16":
        return Peak(measure_cpu_peak(dtype=torch.bfloat16),
                    f"bf16 matmul micro-benchmark, {torch.get_num_threads()} thread(s)")
    if cpu_peak is None:
        cpu_peak = measure_cpu_peak()
    return Peak(cpu_peak, f"fp32 matmul micro-benchmark at start, {torch.get_num_threads()} thread(s)")
