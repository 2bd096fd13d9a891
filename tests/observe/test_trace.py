"""``open(trace=...)`` writes valid Chrome trace-event JSON with one track per stage worker."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio
import pytest

import aiopipe as ap
from aiopipe._core.observe._trace import MAX_EVENTS


async def slowish(x: int) -> int:
    await anyio.sleep(0.001)
    return x


async def traced(path: Path) -> tuple[dict[str, Any], ap.PipelineStats]:
    pipe = ap.from_iterable(range(200)).map(slowish, workers=2).batch(8)
    with anyio.fail_after(20):
        async with pipe.open(trace=path) as run:
            batches = [b async for b in run]
            stats = run.stats()
    assert len(batches) == 25
    return json.loads(await anyio.Path(path).read_text()), stats


def tracks(doc: dict[str, Any]) -> dict[int, str]:
    return {
        e["tid"]: e["args"]["name"]
        for e in doc["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_name"
    }


@pytest.mark.anyio
async def test_one_track_per_stage_worker(tmp_path: Path) -> None:
    doc, _ = await traced(tmp_path / "trace.json")
    names = sorted(tracks(doc).values())
    assert names == sorted(
        ["from_iterable#0", "map(slowish)#0", "map(slowish)#1", "batch#0", "consumer#0"]
    )
    assert doc["displayTimeUnit"] == "ms"
    process = [e for e in doc["traceEvents"] if e["name"] == "process_name"]
    assert process[0]["args"]["name"] == "aiopipe"


@pytest.mark.anyio
async def test_events_are_well_formed_and_tracks_never_overlap(tmp_path: Path) -> None:
    doc, _ = await traced(tmp_path / "trace.json")
    spans: defaultdict[int, list[tuple[float, float]]] = defaultdict(list)
    for e in doc["traceEvents"]:
        assert e["ph"] in ("M", "X", "C")
        assert e["pid"] == 1
        if e["ph"] == "X":
            assert e["name"] in ("busy", "blocked", "starved")
            assert e["ts"] >= 0
            assert e["dur"] >= 0
            spans[e["tid"]].append((e["ts"], e["ts"] + e["dur"]))
    assert set(spans) == set(tracks(doc))
    for intervals in spans.values():
        intervals.sort()
        for (_, end), (start, _) in itertools.pairwise(intervals):
            assert start >= end - 0.01  # complete events on one track must not overlap


@pytest.mark.anyio
async def test_spans_add_up_to_the_stats(tmp_path: Path) -> None:
    doc, stats = await traced(tmp_path / "trace.json")
    by_stage: defaultdict[tuple[str, str], float] = defaultdict(float)
    names = tracks(doc)
    for e in doc["traceEvents"]:
        if e["ph"] == "X":
            by_stage[names[e["tid"]].rsplit("#", 1)[0], e["name"]] += e["dur"] / 1e6
    slow = stats.by_name("map(slowish)")
    assert by_stage["map(slowish)", "busy"] == pytest.approx(slow.busy_s, rel=0.05, abs=0.002)
    assert by_stage["map(slowish)", "starved"] == pytest.approx(slow.starved_s, abs=0.002)
    # The slow map is where the time goes; the consumer mostly waits for it.
    assert by_stage["consumer", "starved"] > by_stage["consumer", "busy"]


@pytest.mark.anyio
async def test_buffer_fill_counters(tmp_path: Path) -> None:
    doc, _ = await traced(tmp_path / "trace.json")
    counters: defaultdict[str, list[float]] = defaultdict(list)
    for e in doc["traceEvents"]:
        if e["ph"] == "C":
            counters[e["name"]].append(e["args"]["fill"])
    assert set(counters) == {"fill from_iterable", "fill map(slowish)", "fill batch"}
    assert all(0.0 <= f <= 1.0 for values in counters.values() for f in values)
    info = doc["otherData"]["aiopipe"]
    assert info["max_events"] == MAX_EVENTS
    assert info["events_dropped"] == 0
    assert [s["name"] for s in info["stages"]] == [
        "from_iterable", "map(slowish)", "batch", "consumer"
    ]  # fmt: skip


@pytest.mark.anyio
async def test_huge_runs_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aiopipe._core.observe import _trace

    monkeypatch.setattr(_trace, "MAX_EVENTS", 50)
    doc, _ = await traced(tmp_path / "trace.json")
    timed = [e for e in doc["traceEvents"] if e["ph"] != "M"]
    assert len(timed) == 50
    info = doc["otherData"]["aiopipe"]
    assert info["events_dropped"] > 0
    assert info["truncated_after_us"] == max(e["ts"] for e in timed)


@pytest.mark.anyio
async def test_repeated_stage_names_get_distinct_tracks(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    pipe = ap.from_iterable(range(10)).map(abs).map(abs)
    with anyio.fail_after(10):
        async with pipe.open(trace=path) as run:
            assert [x async for x in run] == list(range(10))
    doc = json.loads(await anyio.Path(path).read_text())
    assert {"map(abs)@1#0", "map(abs)@2#0"} <= set(tracks(doc).values())


@pytest.mark.anyio
async def test_a_failing_run_still_writes_its_trace(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"

    def bad(x: int) -> int:
        raise KeyError(x)

    with anyio.fail_after(10), pytest.raises(KeyError):
        async with ap.from_iterable(range(10)).map(bad).open(trace=path) as run:
            async for _ in run:
                pass
    doc = json.loads(await anyio.Path(path).read_text())
    assert "map(bad)#0" in tracks(doc).values()
