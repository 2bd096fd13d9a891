"""Chrome trace-event files of a run (``pipe.open(trace="trace.json")``), for Perfetto.

One process, one track per stage worker (the consumer last) with ``busy``, ``blocked`` and
``starved`` complete events, and one counter track per stage buffer with its fill fraction.

Blocked and starved spans are recorded by the channels as they happen; busy spans are not recorded
at all (that would cost on the hot path): they are the gaps between waits while the worker was
alive. Buffer fill is sampled by :func:`sample_fills`, a task that runs only while tracing.
Timestamps are microseconds from the start of the run. A trace keeps at most :data:`MAX_EVENTS`
events, the earliest ones, and says in ``otherData.aiopipe`` how many it dropped.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import anyio

from ._stats import RunView, StageStats

__all__ = ["MAX_EVENTS", "sample_fills", "write_trace"]

MAX_EVENTS = 200_000
FILL_INTERVAL_S = 0.005
MAX_FILL_SAMPLES = 20_000
# Chrome's reserved colour names, so the three states read at a glance in chrome://tracing.
COLOURS = {"busy": "thread_state_running", "blocked": "thread_state_iowait", "starved": "grey"}
FORMAT_VERSION = 1

Event = dict[str, Any]


async def sample_fills(stages: Sequence[StageStats]) -> None:
    """Record every stage's buffer use every few ms until cancelled (when the run stops).

    When a long run has taken many samples, every other one is dropped and the interval doubled,
    so memory stays bounded and the whole run stays covered.
    """
    interval = FILL_INTERVAL_S
    while True:
        now = time.perf_counter()
        for s in stages:
            s.fills.append((now, s.buffer_used()))
        if stages and len(stages[0].fills) >= MAX_FILL_SAMPLES:
            for s in stages:
                s.fills[:] = s.fills[::2]
            interval *= 2
        await anyio.sleep(interval)


def write_trace(path: str | os.PathLike[str], run: RunView) -> None:
    """Write the trace of ``run`` (stopped: every worker has recorded its life) to ``path``."""
    end = time.perf_counter()
    stages = list(run.stages)
    for s in stages:
        s.fills.append((end, s.buffer_used()))  # the final state, however short the run
    entries = [*stages, run.consumer]
    labels = _unique_labels([s.name for s in entries])
    meta: list[Event] = [_meta("process_name", 0, {"name": "aiopipe"})]
    events: list[Event] = []
    described: list[dict[str, Any]] = []
    tid = 0
    for pos, (st, label) in enumerate(zip(entries, labels, strict=True)):
        tids = []
        for worker, spans in sorted(_by_worker(st.spans or []).items()):
            tid += 1
            tids.append(tid)
            meta.append(_meta("thread_name", tid, {"name": f"{label}#{worker}"}))
            meta.append(_meta("thread_sort_index", tid, {"sort_index": tid}))
            events.extend(_worker_events(spans, tid, run.started))
        counter = f"fill {label}" if st.buffer_size and pos < len(stages) else None
        if counter is not None:
            events.extend(_fill_events(st, counter, run.started))
        described.append(_describe(st, label, pos, tids, counter))
    events.sort(key=lambda e: float(e["ts"]))
    kept = events[:MAX_EVENTS]
    info = {
        "format": FORMAT_VERSION,
        "max_events": MAX_EVENTS,
        "events_dropped": len(events) - len(kept),
        "truncated_after_us": kept[-1]["ts"] if len(kept) < len(events) else None,
        "elapsed_us": _us(end, run.started),
        "stages": described,
    }
    doc = {"traceEvents": meta + kept, "displayTimeUnit": "ms", "otherData": {"aiopipe": info}}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))


def _by_worker(
    spans: list[tuple[int, str, float, float]],
) -> dict[int, list[tuple[str, float, float]]]:
    out: defaultdict[int, list[tuple[str, float, float]]] = defaultdict(list)
    for worker, kind, t0, t1 in spans:
        out[worker].append((kind, t0, t1))
    return out


def _worker_events(spans: list[tuple[str, float, float]], tid: int, t0: float) -> list[Event]:
    """Blocked/starved events, and busy events for the alive time between them."""
    waits = _disjoint(sorted((a, b, k) for k, a, b in spans if k != "alive"))
    alive = sorted((a, b) for k, a, b in spans if k == "alive")
    if not alive and waits:
        alive = [(waits[0][0], waits[-1][1])]
    out = [_span(k, a, b, tid, t0) for a, b, k in waits]
    i = 0
    for start, stop in alive:
        cursor = start
        while i < len(waits) and waits[i][0] < stop:
            a, b, _ = waits[i]
            if a > cursor:
                out.append(_span("busy", cursor, a, tid, t0))
            cursor = max(cursor, b)
            i += 1
        if stop > cursor:
            out.append(_span("busy", cursor, stop, tid, t0))
    return out


def _disjoint(waits: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Clip overlapping waits (a worker with concurrent sends) so one track never overlaps."""
    out: list[tuple[float, float, str]] = []
    last = float("-inf")
    for a, b, kind in waits:
        a = max(a, last)
        if b > a:
            out.append((a, b, kind))
            last = b
    return out


def _fill_events(st: StageStats, counter: str, t0: float) -> list[Event]:
    """Counter events where the fill changed (a counter holds its value until the next one)."""
    out: list[Event] = []
    last = -1
    final = len(st.fills) - 1
    for i, (t, used) in enumerate(st.fills):
        if used != last or i == final:  # the final one extends the track to the end of the run
            fill = round(min(used, st.buffer_size) / st.buffer_size, 4)
            out.append(
                {"name": counter, "ph": "C", "ts": _us(t, t0), "pid": 1, "args": {"fill": fill}}
            )
            last = used
    return out


def _span(kind: str, a: float, b: float, tid: int, t0: float) -> Event:
    ts = _us(a, t0)
    return {
        "name": kind,
        "cat": "aiopipe",
        "ph": "X",
        "ts": ts,
        "dur": max(0.0, round(_us(b, t0) - ts, 3)),
        "pid": 1,
        "tid": tid,
        "cname": COLOURS[kind],
    }


def _meta(name: str, tid: int, args: dict[str, Any]) -> Event:
    return {"name": name, "ph": "M", "pid": 1, "tid": tid, "args": args}


def _describe(
    st: StageStats, label: str, pos: int, tids: list[int], counter: str | None
) -> dict[str, Any]:
    return {
        "name": st.name,
        "label": label,
        "position": pos,
        "workers": st.workers,
        "buffer_size": st.buffer_size,
        "tids": tids,
        "counter": counter,
    }


def _unique_labels(names: list[str]) -> list[str]:
    """Stage names, with the position added to those that repeat (two ``map(<lambda>)``)."""
    return [f"{n}@{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def _us(t: float, t0: float) -> float:
    return round(max(0.0, t - t0) * 1e6, 3)
