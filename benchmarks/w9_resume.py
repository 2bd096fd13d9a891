"""W9 resume: time to the first batch after ``open(state=)`` at 10 %, 50 % and 90 % of an epoch.

The pipeline is ``from_arrays(1,000,000 ints) -> map(work) -> batch(256)``, where ``work`` is a
pure-Python busy loop calibrated at start-up to cost ~50 us an element (a whole epoch: ~50 s of
map). Measured, as medians of several runs: the time to the first batch of a fresh ``open()``;
the time to the first batch of ``open(state=)`` with the state saved after 10 %, 50 % and 90 % of
the batches; the state's size as JSON. The ratio resume / fresh is the target: flat across the
cuts and near 1 (resuming costs what is left in flight, not what was delivered). The same again
with ``shuffle(10_000, seed=0)`` before the batch, whose state holds the input index of every
element in its buffer.

How the states are made: reaching 90 % with the real map would take ~45 s a state. A state
depends on the stages' names and parameters, not on the map's function, so the states are taken
from the same pipeline with a cheap map of the same name (``map(fn, name="map(work)")`` in both)
and then given to the expensive one. The first batch after each resume is checked against the
one the cheap run delivered next, so a wrong resume cannot give a fast number.

Before issue 12 the engine resumed by replaying the run from the start and dropping what had
been delivered: its resume at a cut cost the cut's share of the epoch's map (90 %: ~45 s). That
row is computed from the calibrated cost, not run.

    python benchmarks/w9_resume.py [--quick] [--runs R] [--json PATH] [--chart DIR]
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Timing, Workload, check_equal, standalone, timed_workload

import aiopipe as ap

ELEMENTS = 1_000_000
COST_S = 50e-6
BATCH = 256
SHUFFLE = 10_000
CUTS = (0.10, 0.50, 0.90)
TARGET = 1.5  # resume / fresh time to first batch, at every cut
MAP_NAME = "map(work)"


def calibrated_work(cost_s: float) -> Callable[[Any], Any]:
    """A function of one element that spends ~``cost_s`` in a Python loop (holding the GIL, as
    decoding in Python would) and returns the element unchanged."""

    def spin(loops: int) -> None:
        for _ in range(loops):
            pass

    probe, calls = 2_000, 200
    t0 = time.perf_counter()
    for _ in range(calls):
        spin(probe)
    per_loop = (time.perf_counter() - t0) / (calls * probe)
    loops = max(1, round(cost_s / per_loop))

    def work(x: Any) -> Any:
        spin(loops)
        return x

    return work


def pipeline(n: int, fn: Callable[[Any], Any], shuffled: bool) -> ap.Pipeline[Any]:
    pipe = ap.from_arrays(np.arange(n)).map(fn, name=MAP_NAME)
    if shuffled:
        pipe = pipe.shuffle(SHUFFLE, seed=0)
    return pipe.batch(BATCH)


async def state_at(n: int, shuffled: bool, cut: int) -> tuple[dict[str, Any], list[int]]:
    """The state after ``cut`` batches of the cheap twin, and the batch it delivered next."""
    async with pipeline(n, lambda x: x, shuffled).open() as run:
        for _ in range(cut):
            await run.receive()
        state = json.loads(json.dumps(run.state_dict()))  # as a checkpoint file would hold it
        nxt = await run.receive()
    return state, nxt.tolist()


async def first_batch(
    n: int, fn: Callable[[Any], Any], shuffled: bool, state: dict[str, Any] | None
) -> tuple[float, list[int]]:
    """Seconds from ``open`` to the first batch in hand (closing the run is not counted)."""
    t0 = time.perf_counter()
    async with pipeline(n, fn, shuffled).open(state=state) as run:
        batch = await run.receive()
        took = time.perf_counter() - t0
    return took, batch.tolist()


async def measure(
    w: Workload, n: int, fn: Callable[[Any], Any], shuffled: bool, runs: int, warm_resumes: bool
) -> list[dict[str, Any]]:
    """Rows for one pipeline: fresh and resumed runs alternate, round after round, so that a
    change in the machine's load falls on all of them alike. Round 0 warms up (the resumed runs
    only if ``warm_resumes``). Returns the states."""
    label = "shuffle(10k) " if shuffled else ""
    batches = -(-n // BATCH)
    cuts = [round(frac * batches) for frac in CUTS]
    _, first = await state_at(n, shuffled, 0)
    saved = [await state_at(n, shuffled, cut) for cut in cuts]
    cases = [
        ("fresh", None, first),
        *((f"{f:.0%}", s, e) for f, (s, e) in zip(CUTS, saved, strict=True)),
    ]
    samples: dict[str, list[float]] = {what: [] for what, _, _ in cases}
    for round_ in range(runs + 1):
        for what, state, expected in cases:
            if not round_ and state is not None and not warm_resumes:
                continue
            took, batch = await first_batch(n, fn, shuffled, state)
            check_equal(f"W9 {label}first batch ({what})", batch, expected)
            if round_:
                samples[what].append(took)
    fresh = Timing(tuple(samples["fresh"]))
    w.add_seconds(f"aiopipe {label}fresh open", fresh, "time to first batch", "ms")
    for frac in CUTS:
        t = Timing(tuple(samples[f"{frac:.0%}"]))
        ratio = t.median / fresh.median
        w.add_seconds(
            f"aiopipe {label}resume at {frac:.0%}",
            t,
            "time to first batch",
            "ms",
            ratio=ratio,
            ratio_to="vs fresh",
            target=f"<= {TARGET}x fresh",
            met=ratio <= TARGET,
        )
    for frac, (state, _) in zip(CUTS, saved, strict=True):
        size = len(json.dumps(state)) / 1000  # as JSON, as a checkpoint holds it
        w.add(
            f"aiopipe {label}state at {frac:.0%}", "state size", "kB", size, higher_is_better=False
        )
    return [s for s, _ in saved]


def reread(states: list[dict[str, Any]]) -> str:
    """What each resumed shuffle makes again before its first batch (from its state): the held
    rows the source sends first when it can seek, else everything since the oldest held."""
    spans = []
    for frac, state in zip(CUTS, states, strict=True):
        own = next((s for s in state["at"] if isinstance(s, dict) and "made" in s), None)
        if own is None:
            continue
        if "picked" in own:
            spans.append(f"{int(own['picked']):,} picked at {frac:.0%}")
        elif "first" in own:
            spans.append(f"{int(own['taken']) - int(own['first']):,} re-read at {frac:.0%}")
    return ", ".join(spans) or "not in its state"


def run(*, quick: bool = False, runs: int | None = None) -> Workload:
    n = 20_000 if quick else ELEMENTS
    runs = runs or (2 if quick else 5)
    fn = calibrated_work(COST_S / 10 if quick else COST_S)
    t0 = time.perf_counter()
    for i in range(1000):
        fn(i)
    per_element = (time.perf_counter() - t0) / 1000
    w = Workload(
        "W9",
        f"resume: {n:,} ints -> map(~{per_element * 1e6:.0f} us) -> [shuffle(10k)] -> "
        f"batch({BATCH}), time to first batch",
    )
    w.params = {"elements": n, "map_cost_s": per_element, "runs": runs, "cuts": list(CUTS)}

    async def main() -> list[dict[str, Any]]:
        await measure(w, n, fn, shuffled=False, runs=runs, warm_resumes=True)
        # A shuffle fills 10,000 elements (~0.5 s) per open: one timed round, and no warm-up
        # of the resumes (the runs above warmed the code), keep W9 near a minute.
        return await measure(w, n, fn, shuffled=True, runs=1, warm_resumes=False)

    shuffle_states = anyio.run(main)
    for frac in CUTS:
        replay = frac * n * per_element
        w.add(
            f"old engine (replay), resume at {frac:.0%}",
            "time to first batch",
            "ms",
            replay * 1e3,
            higher_is_better=False,
            note="computed: the cut's share of the epoch's map, not run",
        )
    w.note(
        "states are taken from a twin pipeline with a cheap map of the same name (a state holds "
        "stage names and parameters, not functions); each resumed first batch is checked"
    )
    w.note(
        "old engine rows are computed (cut x elements x measured map cost): it replayed the "
        "epoch up to the cut before its first batch"
    )
    w.note(
        "shuffle: a resumed buffer is refilled with exactly the held elements: from_arrays "
        "seeks, sending the held rows first (a source that cannot seek is re-read from the "
        f"oldest held): {reread(shuffle_states)}, against the {SHUFFLE:,} of a fresh fill; "
        "timed in one round"
    )
    return w


def main(argv: list[str] | None = None) -> int:
    return standalone(lambda **kw: timed_workload(lambda: run(**kw)), __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
