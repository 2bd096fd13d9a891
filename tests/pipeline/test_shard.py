"""shard: files right after from_files (per-epoch, disjoint), elements elsewhere; equal counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

import aiopipe as ap

LINES = 6  # records per file


@pytest.fixture
def files(tmp_path: Path) -> str:
    for f in range(10):
        (tmp_path / f"part-{f:02d}.txt").write_text("".join(f"{f}:{i}\n" for i in range(LINES)))
    return str(tmp_path / "part-*.txt")


async def collect(pipe: ap.Pipeline[object]) -> list[object]:
    with anyio.fail_after(10):
        return await pipe.collect()


def epochs_of(paths: list[str], per_epoch: int) -> list[list[str]]:
    return [paths[i : i + per_epoch] for i in range(0, len(paths), per_epoch)]


@pytest.mark.anyio
async def test_files_are_sharded_per_epoch_disjoint_and_complete(files: str) -> None:
    every = sorted(await collect(ap.from_files(files)))
    shards = []
    for rank in range(3):
        pipe = ap.from_files(files, epochs=3, shuffle=True, seed=5).shard(3, rank)
        assert pipe.stage_names == [f"from_files.shard({rank}/3)"]
        got = await collect(pipe)
        per_epoch = len(range(rank, 10, 3))
        assert len(got) == 3 * per_epoch
        shards.append(epochs_of(got, per_epoch))
    for epoch in range(3):
        together = [p for shard in shards for p in shard[epoch]]
        assert sorted(together) == every  # disjoint, and every file once
    assert shards[0][0] != shards[0][1], "a shuffled source deals other files each epoch"


@pytest.mark.anyio
async def test_equal_files_drop_each_epochs_tail(files: str) -> None:
    shards = [
        await collect(ap.from_files(files, epochs=4, shuffle=True, seed=5).shard(3, r, equal=True))
        for r in range(3)
    ]
    assert [len(s) for s in shards] == [12, 12, 12]  # 10 // 3 files per epoch
    dropped = set()
    for epoch in range(4):
        dealt = [p for s in shards for p in epochs_of(s, 3)[epoch]]
        assert len(set(dealt)) == 9
        dropped |= set(await collect(ap.from_files(files))) - set(dealt)
    assert len(dropped) > 1, "the dropped tail differs between epochs"


@pytest.mark.anyio
async def test_elements_are_sharded_elsewhere(files: str) -> None:
    pipe = ap.from_files(files).read(ap.readers.TextLines())
    shards = [await collect(pipe.shard(4, r)) for r in range(4)]
    assert sorted(x for s in shards for x in s) == sorted(await collect(pipe))
    assert [len(s) for s in shards] == [15, 15, 15, 15]


@pytest.mark.anyio
async def test_equal_elements_drop_the_incomplete_last_round() -> None:
    src = ap.from_iterable(range(2003))  # arrives in several chunks
    shards = [await collect(src.shard(7, r, equal=True)) for r in range(7)]
    assert [len(s) for s in shards] == [2003 // 7] * 7
    assert sorted(x for s in shards for x in s) == list(range(2003 - 2003 % 7))
    assert shards[3] == list(range(3, 2002 - 2002 % 7, 7))
    unequal = await collect(src.shard(7, 0))
    assert len(unequal) == 2003 // 7 + 1


def test_launcher_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("WORLD_SIZE", "RANK", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)
    src = ap.from_iterable(range(10))
    with pytest.raises(ValueError, match="none of them is set: pass shard"):
        src.shard()
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert src.shard().stage_names[-1] == "shard(3/4)"
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun's variables win
    with pytest.raises(ValueError, match="WORLD_SIZE is set but RANK is not"):
        src.shard()
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match=r"RANK=2 is not in \[0, WORLD_SIZE=2\)"):
        src.shard()
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ValueError, match="must be integers"):
        src.shard()


def test_bad_arguments_fail_when_built(files: str) -> None:
    with pytest.raises(ValueError, match="both num_shards and index, or neither"):
        ap.from_iterable(range(3)).shard(2)
    with pytest.raises(ValueError, match=r"needs from_files\(seed=...\)"):
        ap.from_files(files, shuffle=True).shard(2, 0)
    with pytest.raises(ValueError, match="matched only 10 files"):
        ap.from_files(files).shard(11, 0)
    ap.from_files(files, shuffle=True).shard(1, 0)  # one shard: nothing to agree on


def run_ranks(world: int, pattern: str, epochs: int, equal: bool) -> list[list[list[str]]]:
    """Start ``world`` driver processes at once, RANK=0..world-1; each one's batches."""
    driver = Path(__file__).with_name("shard_driver.py")
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    procs = [
        subprocess.Popen(
            [sys.executable, str(driver), pattern, str(epochs), "1" if equal else "0"],
            env=base | {"WORLD_SIZE": str(world), "RANK": str(rank)},
            stdout=subprocess.PIPE,
            text=True,
        )
        for rank in range(world)
    ]
    out = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * world
    return [json.loads(text) for text in out]


@pytest.mark.parametrize("equal", [False, True])
def test_driver_processes_get_disjoint_complete_shards(files: str, equal: bool) -> None:
    world, epochs = 3, 2
    ranks = run_ranks(world, files, epochs, equal)
    records = [[x for b in batches for x in b] for batches in ranks]
    for epoch in range(epochs):
        seen: list[str] = []
        for rank, recs in enumerate(records):
            per_epoch = (10 // world if equal else len(range(rank, 10, world))) * LINES
            seen += recs[epoch * per_epoch : (epoch + 1) * per_epoch]
        files_seen = {r.split(":")[0] for r in seen}
        assert len(seen) == len(set(seen)), "a record reached two ranks in one epoch"
        assert len(files_seen) == (9 if equal else 10)
    counts = [len(batches) for batches in ranks]
    if equal:
        assert counts == [counts[0]] * world  # data-parallel steps agree: no rank hangs
    else:
        assert sum(len(r) for r in records) == 10 * LINES * epochs
