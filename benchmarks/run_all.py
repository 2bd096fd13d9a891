"""Run the whole benchmark suite: W1-W9, memory (+ queues and TFRecord if present).

Writes ``.bench/results.json``, ``.bench/results.md`` and one PNG per workload in ``.bench/``, and
prints the table. Rivals (torch, tensorflow, ...) appear when installed (``make bench-rivals``);
the others are reported as skipped.

    python benchmarks/run_all.py [--quick] [--out DIR] [--only W2,W3]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # benchmarks/ is not a package

from _common import (  # noqa: E402
    BENCH_DIR,
    Timing,
    Workload,
    draw_chart,
    have,
    print_workload,
    text_table,
    time_runs,
    write_json,
    write_markdown,
)

# Our workloads: a failure here (a wrong result, a crash) makes the run fail.
OWN = ["W1", "W2", "W2b", "W3", "W4", "W5a", "W5b", "W6", "W7", "W8", "W9", "memory"]
# Written by others, run when present; their failures are reported, not fatal.
EXTERNAL = {"queues": "bench_queues", "tfrecord": "bench_tfrecord"}


def load(module: str) -> ModuleType | None:
    if not (HERE / f"{module}.py").exists():
        return None
    return importlib.import_module(module)


# -- W1: bench_engine.main, plus the rivals of benchmarks/_rivals.py ------------------------------

# A rival's timed run handles about this many seconds of items (at least 20,000, at most the
# workload's count): the slowest rivals (SPDL ~10 k items/s) would otherwise take minutes a run,
# and a rate per item needs no more.
W1_RIVAL_RUN_S = 1.0


def w1_rival(fn: Callable[[int], int], n: int, runs: int) -> tuple[int, Timing]:
    """Items and timing for one rival, its item count sized from a timed warm-up."""

    def check(items: int) -> Callable[[int], None]:
        def ok(total: int) -> None:
            if total != items * (items + 1) // 2:
                raise AssertionError(f"W1: sum {total}, expected {items * (items + 1) // 2}")

        return ok

    probe = min(n, 20_000)
    t = time_runs(lambda: fn(probe), runs=1, warmup=1, check=check(probe))
    items = int(min(n, max(probe, probe / t.median * W1_RIVAL_RUN_S)))
    return items, time_runs(lambda: fn(items), runs=runs, warmup=0, check=check(items))


def run_w1(quick: bool) -> Workload:
    import _rivals
    import bench_engine

    items, runs = (20_000, 2) if quick else (1_000_000, 5)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w1.json"
        code = bench_engine.main(["--items", str(items), "--runs", str(runs), "--json", str(path)])
        if code:
            raise RuntimeError(f"bench_engine.main returned {code}")
        data = json.loads(path.read_text())
    results: dict[str, dict[str, float]] = data["results"]
    w = Workload("W1", f"per-item overhead: {items:,} ints -> map(x+1) -> batch 256 -> sum")
    w.params = {"items": items, "runs": runs}
    for name, fn in _rivals.w1_systems().items():
        try:
            n, t = w1_rival(fn, items, runs)
        except Exception as exc:  # a rival that breaks is reported, not fatal
            w.note(f"{name} failed: {type(exc).__name__}: {exc}")
            continue
        results[name] = {"median": n / t.median, "min": n / t.hi, "max": n / t.lo}
        if n < items:
            w.note(f"{name}: timed on {n:,} items a run (its rate, not its total, is compared)")
    base_name = next(k for k in results if "generator" in k)
    base = results[base_name]["median"]
    dl = results.get("torch DataLoader(num_workers=0)", {}).get("median")
    for name, r in results.items():
        ratio = r["median"] / base
        kw: dict[str, Any] = {}
        if name != base_name:
            kw = {"ratio": ratio, "ratio_to": "vs chain"}
        if name.startswith("aiopipe async for"):
            met = ratio >= 0.5 and (dl is None or r["median"] >= 1.2 * dl)
            target = ">= 0.5x chain" + (", >= 1.2x DataLoader(0)" if dl else "")
            kw |= {"target": target, "met": met}
        w.add(name, "throughput", "items/s", r["median"], lo=r["min"], hi=r["max"], **kw)
    if dl is None:
        w.note("the >= 1.2x DataLoader(0) half of the target needs torch (make bench-rivals)")
    w.note(
        "the target is for the async consumer; iter_sync (a plain for loop fed from the event "
        "loop's thread) pays a handoff between two threads under the GIL on every chunk"
    )
    return w


def run_module(module: str, quick: bool) -> Workload:
    mod = importlib.import_module(module)
    w: Workload = mod.run(quick=quick)
    return w


OWN_RUNNERS: dict[str, Callable[[bool], Workload]] = {
    "W1": run_w1,
    "W2": lambda q: run_module("w2_small_files", q),
    "W2b": lambda q: run_module("w2b_slow_storage", q),
    "W3": lambda q: run_module("w3_overlap", q),
    "W4": lambda q: run_module("w4_shutdown", q),
    "W5a": lambda q: importlib.import_module("w5_cpu").run_a(quick=q),
    "W5b": lambda q: importlib.import_module("w5_cpu").run_b(quick=q),
    "W6": lambda q: run_module("w6_object_store", q),
    "W7": lambda q: run_module("w7_ray", q),
    "W8": lambda q: run_module("w8_examples", q),
    "W9": lambda q: run_module("w9_resume", q),
    "memory": lambda q: run_module("memory", q),
}


# -- benchmarks written by others ----------------------------------------------------------------


def external_argv(source: str, json_path: Path, quick: bool) -> list[str]:
    """Only the flags its parser knows (looked up in its source), so argparse cannot reject us."""
    argv: list[str] = []
    if '"--json"' in source or "'--json'" in source:
        argv += ["--json", str(json_path)]
    if quick:
        small = {"--quick": [], "--items": ["20000"], "--mb": ["2"], "--runs": ["2"]}
        for flag, value in small.items():
            if f'"{flag}"' in source or f"'{flag}'" in source:
                argv += [flag, *value]
    return argv


def rows_from_payload(key: str, payload: Any, w: Workload) -> None:
    """Accept our Workload JSON, a suite file of them, or bench_engine's {"results": {...}}."""
    if isinstance(payload, dict) and "workloads" in payload:
        for sub in payload["workloads"].values():
            rows_from_payload(key, sub, w)
        return
    if isinstance(payload, dict) and "rows" in payload:
        other = Workload.from_json(payload)
        for r in other.rows:
            r.workload = key
        w.rows += other.rows
        w.notes += other.notes
        return
    if not isinstance(payload, dict):
        w.note("wrote JSON in a format this runner does not know; see its printed output")
        return
    for field, value in payload.items():  # e.g. {"items_per_s": {"system": 1.2e6, ...}}
        if field.endswith("per_s") and isinstance(value, dict):
            unit = "items/s" if field == "items_per_s" else field.replace("_per_s", "/s")
            for name, v in value.items():
                if isinstance(v, int | float):
                    w.add(str(name), "throughput", unit, float(v))
    results = payload.get("results")
    if isinstance(results, list):  # e.g. [{"method": "...", "mb_per_s": 812.0, ...}, ...]
        for r in results:
            if not isinstance(r, dict):
                continue
            name = next((str(v) for v in r.values() if isinstance(v, str)), "?")
            for field, v in r.items():
                if field.endswith("per_s") and isinstance(v, int | float):
                    unit = "items/s" if field == "items_per_s" else field.replace("_per_s", "/s")
                    w.add(name, field, unit, float(v))
    if w.rows:
        return
    if isinstance(results, dict):
        unit = str(payload.get("unit", "items/s"))
        for name, r in results.items():
            if isinstance(r, dict) and "median" in r:
                metric = str(r.get("metric", "median"))
                lo, hi = r.get("min"), r.get("max")
                w.add(str(name), metric, unit, float(r["median"]), lo=lo, hi=hi)
        if w.rows:
            return
    w.note("ran, but wrote JSON in a format this runner does not know; see its printed output")


def run_external(key: str, module: str, quick: bool) -> Workload | None:
    path = HERE / f"{module}.py"
    if not path.exists():
        print(f"skipped: benchmarks/{module}.py not present")
        return None
    w = Workload(key, f"{module}.py")
    source = path.read_text()
    mod = importlib.import_module(module)
    main = getattr(mod, "main", None)
    if main is None:
        w.note(f"{module}.py has no main(argv); not run")
        return w
    with tempfile.TemporaryDirectory() as tmp:
        json_path = Path(tmp) / f"{module}.json"
        code = main(external_argv(source, json_path, quick))
        if code:
            w.note(f"{module}.main returned {code}")
        if json_path.exists():
            rows_from_payload(key, json.loads(json_path.read_text()), w)
        else:
            w.note("wrote no JSON; see its printed output")
    return w


# -- the suite -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for smoke tests")
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="where results go")
    parser.add_argument("--only", default="", help="comma-separated workloads, e.g. W2,W3")
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    t_start = time.perf_counter()
    workloads: list[Workload] = []
    failed: list[str] = []
    for key in OWN:
        if only and key not in only:
            continue
        print(f"-- running {key} ...", flush=True)
        t0 = time.perf_counter()
        try:
            w = OWN_RUNNERS[key](args.quick)
        except Exception as exc:
            traceback.print_exc()
            failed.append(key)
            w = Workload(key, "FAILED")
            w.note(f"failed: {type(exc).__name__}: {exc}")
        w.seconds = time.perf_counter() - t0
        workloads.append(w)
        print_workload(w)
    for key, module in EXTERNAL.items():
        if only and key not in only:
            continue
        print(f"-- running {key} ({module}.py) ...", flush=True)
        t0 = time.perf_counter()
        try:
            ext = run_external(key, module, args.quick)
        except (Exception, SystemExit) as exc:
            traceback.print_exc()
            ext = Workload(key, f"{module}.py")
            ext.note(f"failed: {type(exc).__name__}: {exc}")
        if ext is None:
            ext = Workload(key, f"{module}.py")
            ext.note(f"skipped: benchmarks/{module}.py not present")
        ext.seconds = time.perf_counter() - t0
        workloads.append(ext)
        print_workload(ext)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for w in workloads:
        draw_chart(w, out)
    total = time.perf_counter() - t_start
    rivals = {m: have(m) for m in ("torch", "tensorflow", "torchdata", "grain", "spdl", "tfrecord")}
    write_json(
        out / "results.json",
        workloads,
        {"quick": args.quick, "total_seconds": round(total, 1), "rivals_installed": rivals},
    )
    write_markdown(out / "results.md", workloads, "aiopipe benchmarks")
    rows = [r for w in workloads for r in w.rows]
    print("\n== all workloads")
    print(text_table(rows))
    judged = [r for r in rows if r.met is not None]
    missed = [r for r in judged if not r.met]
    print(
        f"\n{len(judged) - len(missed)}/{len(judged)} targets met; total {total:.0f} s; "
        f"wrote {out / 'results.json'}, {out / 'results.md'} and PNGs"
    )
    for r in missed:
        print(f"  missed: {r.workload} {r.system} {r.metric}: {r.value:.4g} {r.unit} ({r.target})")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
