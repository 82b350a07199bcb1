"""The shard policy (mgan_cli/run/sharding.py): a partition of the manifest, by output name, from --shard, SLURM,
torchrun or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from mgan_cli.errors import ConfigurationError
from mgan_cli.run.sharding import Shard, from_environment, manifest, parse_shard, shard_of, take

PATHS = [Path(f"in/{i:03d}.png") for i in range(200)] + [Path("in/000.jpg"), Path("other/017.webp")]


@pytest.mark.parametrize("count", [1, 2, 3, 16])
def test_shards_partition_the_manifest_and_keep_one_output_on_one_shard(count: int) -> None:
    shares = [take(PATHS, Shard(i, count)) for i in range(count)]
    union = [p for share in shares for p in share]
    assert sorted(union) == sorted(PATHS)  # every input once: the union is the manifest, no overlap
    for share in shares:
        stems = {p.stem for p in share}
        assert all(p in share for p in PATHS if p.stem in stems)  # same output name, same shard
    if count > 1:
        assert all(share for share in shares)  # 200 names fill every shard
        assert max(map(len, shares)) < 2 * len(PATHS) / count  # and roughly evenly


def test_an_inputs_shard_does_not_depend_on_the_other_inputs() -> None:
    alone = take([Path("x/017.png")], Shard(shard_of("017.png", 4), 4))
    assert alone == [Path("x/017.png")]
    assert shard_of("017.png", 4) == shard_of("017.png", 4)
    assert [p for p in take(PATHS, Shard(1, 4)) if p.stem == "017"] == (
        [Path("in/017.png"), Path("other/017.webp")] if shard_of("017.png", 4) == 1 else [])


def test_manifest_is_sorted_by_output_then_path() -> None:
    listed = manifest([Path("b/2.png"), Path("a/2.jpg"), Path("c/1.png"), Path("c/1.png")])
    assert listed == [Path("c/1.png"), Path("a/2.jpg"), Path("b/2.png")]


def test_parse_shard() -> None:
    assert parse_shard(" 3 / 16 ") == (3, 16)
    for bad in ("16/16", "1/0", "-1/4", "3", "a/b", "1/2/3"):
        with pytest.raises(ConfigurationError, match="--shard"):
            parse_shard(bad)


def test_where_the_shard_comes_from() -> None:
    assert from_environment(None, {}) == Shard(0, 1, "default")
    slurm_too = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert from_environment("2/5", slurm_too) == Shard(2, 5, "--shard")
    slurm = from_environment(None, {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "16"})
    assert (slurm.index, slurm.count, slurm.source) == (3, 16, "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT")
    ranged = from_environment(None, {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1",
                                     "SLURM_ARRAY_TASK_MAX": "16", "SLURM_ARRAY_TASK_COUNT": "16"})
    assert (ranged.index, ranged.count) == (4, 16) and "MIN..MAX" in ranged.source
    torchrun = from_environment(None, {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert torchrun == Shard(1, 2, "torchrun RANK/WORLD_SIZE", local_rank=1, rank=1)
    assert not torchrun.is_main


def test_a_resubmission_of_some_indices_must_name_its_shard() -> None:
    """``sbatch --array=3,7``: COUNT 2, MIN 3, MAX 7 say nothing about the first array's N."""
    with pytest.raises(ConfigurationError, match=r"not a contiguous range.*--shard"):
        from_environment(None, {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "2",
                                "SLURM_ARRAY_TASK_MIN": "3", "SLURM_ARRAY_TASK_MAX": "7"})
    with pytest.raises(ConfigurationError, match="--shard"):
        from_environment(None, {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "2"})
    explicit = from_environment("7/16", {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "2",
                                         "SLURM_ARRAY_TASK_MIN": "3", "SLURM_ARRAY_TASK_MAX": "7"})
    assert (explicit.index, explicit.count) == (7, 16)


def test_torchrun_ranks_split_their_shard_exactly() -> None:
    """Rank r of W takes shard I + N·r of N·W: the ranks' union is shard I of N."""
    environ = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3", "WORLD_SIZE": "4"}
    ranks = [from_environment(None, {**environ, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(4)]
    assert [(s.index, s.count) for s in ranks] == [(1, 12), (4, 12), (7, 12), (10, 12)]
    assert all("SLURM" in s.source and "torchrun" in s.source for s in ranks)
    union = sorted(p for s in ranks for p in take(PATHS, s))
    assert union == sorted(take(PATHS, Shard(1, 3)))
