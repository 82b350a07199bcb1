"""The benchmark: the engine's batched, fused optimisation gives the same result as a plain one-image loop in the
reference's style built from mgan's own parts (generator split, loss), so the benchmark compares like with like;
FLOP counting and the harness run. (That loop is not the reference code: agreement here says nothing about the
reference implementation itself, only that batching and fusion do not change mgan's mathematics.)"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from bench.flops import count_flops
from bench.reference_loop import ReferenceLoop, reference_invert
from mgan_cli.core.degradations import Identity
from mgan_cli.core.engine import EngineOptions, InversionSettings, invert
from mgan_cli.core.losses import ReconstructionLoss
from mgan_cli.generators import ARCHITECTURES
from mgan_cli.weights.loading import load_generator
from tests.helpers import vgg16_weights

SEED = 3


def _reference_settings(codes: int, layer: int, iterations: int) -> InversionSettings:
    """mgan's settings equivalent to the reference's loop: SGD lr 1 on codes and α, mean composition."""
    return InversionSettings(codes=codes, layer=layer, composition="mean", iterations=iterations, optimizer="sgd",
                             lr=1.0, alpha_lr=1.0, schedule="constant")


def _assert_same_reconstruction(generator, target: torch.Tensor, loss: ReconstructionLoss,
                                settings: InversionSettings) -> None:
    ours = invert(generator, target, Identity(), loss, settings, [SEED])
    ref = reference_invert(generator, target, loss, layer=settings.layer, codes=settings.codes,
                           iterations=settings.iterations, seed=SEED)
    start = ReferenceLoop(generator, target, loss, layer=settings.layer, codes=settings.codes, seed=SEED)
    assert (ref.codes - start.codes.detach()).abs().max() > 1e-3  # the codes did move: the check is not vacuous
    assert (ref.alphas - start.alphas.detach()).abs().max() > 1e-6
    assert (ours.images - ref.image).abs().max() < 1e-4
    assert (ours.codes - ref.codes).abs().max() < 1e-4
    assert (ours.alphas - ref.alphas).abs().max() < 1e-4
    assert torch.allclose(ours.losses, ref.loss, rtol=1e-4, atol=1e-6)


def test_batched_engine_matches_the_plain_one_image_loop_on_the_real_dcgan(shared_dir) -> None:
    torch.manual_seed(0)
    generator = load_generator("dcgan64-digiface")
    with torch.no_grad():
        target = generator(torch.randn(1, generator.latent_size, generator=torch.Generator().manual_seed(7)))
    loss = ReconstructionLoss(perceptual_weight=1.0, vgg_layer=16, perceptual_resolution=64,
                              vgg_weights=vgg16_weights())
    _assert_same_reconstruction(generator, target.clamp(-1, 1), loss, _reference_settings(8, 2, 5))


def test_batched_engine_matches_the_plain_one_image_loop_on_a_tiny_pggan(shared_dir) -> None:
    torch.manual_seed(0)
    generator = ARCHITECTURES.get("pggan")(resolution=32, z_dim=16, fmaps_base=128, fmaps_max=16).freeze()
    with torch.no_grad():
        for param in generator.parameters():
            param.copy_(torch.randn(param.shape, generator=torch.Generator().manual_seed(param.numel())))
        target = generator(torch.randn(1, 16, generator=torch.Generator().manual_seed(11))).clamp(-1, 1)
    loss = ReconstructionLoss(perceptual_weight=1.0, vgg_layer=16, perceptual_resolution=32,
                              vgg_weights=vgg16_weights())
    _assert_same_reconstruction(generator, target, loss, _reference_settings(5, 4, 5))


def test_history_keeps_one_copy_of_the_latents_per_step() -> None:
    generator = ARCHITECTURES.get("pggan")(resolution=8, z_dim=4, fmaps_base=32, fmaps_max=4).freeze()
    loop = ReferenceLoop(generator, torch.zeros(1, 3, 8, 8), ReconstructionLoss(perceptual_weight=0.0), layer=2,
                         codes=3, history=True)
    result = loop.run(4)
    assert len(result.history) == 4
    assert result.history[-1][0] is not loop.codes and torch.equal(result.history[-1][0], loop.codes)
    assert not torch.equal(result.history[0][0], result.history[-1][0])


def test_grouped_convolutions_count_as_their_separate_convolutions() -> None:
    groups, channels = 4, 8
    x = torch.randn(1, groups * channels, 16, 16, requires_grad=True)
    w = torch.randn(groups * channels, channels, 3, 3, requires_grad=True)
    grouped = count_flops(lambda: F.conv2d(x, w, padding=1, groups=groups).sum().backward())
    split = count_flops(lambda: sum(F.conv2d(x[:, i * channels:(i + 1) * channels],
                                             w[i * channels:(i + 1) * channels], padding=1).sum()
                                    for i in range(groups)).backward())
    forward = 2 * groups * channels * channels * 9 * 16 * 16  # multiply-adds × 2, per output pixel and channel
    assert grouped == split == 3 * forward  # forward, input gradient, weight gradient


@pytest.mark.filterwarnings("ignore")
def test_the_harness_runs_end_to_end_on_the_cpu(shared_dir, tmp_path, capsys) -> None:
    from bench.__main__ import main

    out, dump = tmp_path / "BENCHMARKS.md", tmp_path / "bench.json"
    results = main(["--configs", "dcgan64", "--device", "cpu", "--iterations", "2", "--images", "1", "--warmup", "0",
                    "--threads", "1", "--perceptual-resolution", "32", "--out", str(out), "--json", str(dump)])
    printed = capsys.readouterr().out
    mgan_precision = EngineOptions.for_device(torch.device("cpu")).precision  # bf16 on CPUs that do it natively
    for side, precision in (("reference", "fp32"), ("reference as shipped", "fp32"),
                            ("mgan same maths", mgan_precision), ("mgan default", mgan_precision)):
        assert f"| dcgan64 | {side} | {precision} | 1 |" in printed
    assert "| config | same maths: max abs ΔPSNR (dB) |" in printed
    assert printed.strip() in out.read_text()
    data = json.loads(dump.read_text())
    sides = data["results"][0]["sides"]
    assert sides["reference"]["flops_per_image_step"] > 0 and sides["mgan same maths"]["s_per_step"] > 0
    # batching does not change the mathematics: same PSNR on both sides of the "same maths" comparison
    same = results[0].sides
    assert abs(same["reference"].psnr[0] - same["mgan same maths"].psnr[0]) < 0.1


def test_full_size_bench_writes_imports_and_runs_one_architecture(tmp_path) -> None:
    """``python -m bench.full_size``'s core at a tiny size: a PGGAN 32 (full channel widths) written as its official
    TF pickle, imported, superres ×8 for 2 steps in a child process; the row it produces."""
    from bench.full_size import COLUMNS, run_arch, table_row

    row = run_arch("pggan", 32, tmp_path / "work", threads=1, timeout=600)
    assert row["finished"] and row["error"] is None, row
    cells = dict(zip(COLUMNS, table_row(row), strict=True))
    assert (cells["architecture"], cells["format"], cells["finished"]) == ("PGGAN 32", "tf-pggan", "yes")
    assert cells["N / ℓ"] == "20 / 6"  # the pggan family's superres defaults: N 20, 16x16 features
    assert row["parameters"] == 20_719_628  # pggan-celebahq1024's config at 32x32
    assert len(row["step_s"]) == 2 and min(row["step_s"]) > 0
    assert float(cells["s/step"]) == pytest.approx(row["step_s"][1], abs=0.006)  # the steps after the first
    assert float(cells["import s"]) > 0 and row["run_s"] > sum(row["step_s"])
    assert row["peak_rss"] >= row["run_peak_rss"] > row["run_rss_before"] > 0
    assert float(cells["run Δ RSS GiB (1 image)"]) == pytest.approx(row["per_image_bytes"] / 2 ** 30, abs=0.006)
    assert int(cells["H200 batch (est.)"]) == row["gpu_batch_estimate"] >= 1
    assert not (tmp_path / "work" / "pggan-32.pkl").exists()  # the written file is removed after the import
    warm = dict(zip(COLUMNS, table_row({**row, "step_s": [5.0, 1.0, 2.0]}), strict=True))
    assert (warm["first step s"], warm["s/step"]) == ("5.00", "1.50")  # the first step's warm-ups are left out

    stopped = run_arch("pggan", 32, tmp_path / "stopped", threads=1, max_rss_gb=0.05, timeout=600)
    assert not stopped["finished"] and "stopped: RSS" in stopped["error"]
    assert table_row(stopped)[-1].startswith("no: stopped: RSS")
