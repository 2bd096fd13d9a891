"""Shared helpers of the benchmark suite: timing, result checks, rows, tables, JSON and charts.

Every workload module builds a :class:`Workload` (rows of measurements plus notes), and can print
it, write it as JSON and draw it as a PNG on its own; ``run_all.py`` gathers all of them.

A row is one number for one system: ``value`` is the median of the timed runs (after a warm-up),
``lo``/``hi`` the spread (min and max of the runs), ``ratio`` compares it with the workload's
baseline or ideal, and ``target``/``met`` say what the issue asks for and whether we reach it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".bench"
DATA_DIR = BENCH_DIR / "data"


# -- timing --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds per run: median and spread of the timed runs (the warm-up is not included)."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def lo(self) -> float:
        return min(self.samples)

    @property
    def hi(self) -> float:
        return max(self.samples)


def time_runs(
    fn: Callable[[], T],
    *,
    runs: int,
    warmup: int = 1,
    check: Callable[[T], None] | None = None,
    warmup_fn: Callable[[], object] | None = None,
) -> Timing:
    """Time ``fn()`` ``runs`` times after ``warmup`` untimed calls; ``check`` validates each result.

    ``warmup_fn`` (default ``fn``) lets a workload warm up on a smaller input. A result that fails
    ``check`` raises, so a broken pipeline cannot produce a fast number.
    """
    for _ in range(warmup):
        res = (warmup_fn or fn)()
        if check is not None and warmup_fn is None:
            check(res)  # type: ignore[arg-type]
    samples = []
    for _ in range(runs):
        _UNTIMED[0] = 0.0
        t0 = time.perf_counter()
        res = fn()
        samples.append(time.perf_counter() - t0 - _UNTIMED[0])
        if check is not None:
            check(res)
    return Timing(tuple(samples))


_UNTIMED = [0.0]


@contextlib.contextmanager
def untimed() -> Iterator[None]:
    """Leave the block out of the current :func:`time_runs` sample.

    For cleanup that a benchmark adds and a training loop would not wait for: joining a rival's
    threads after its last batch, so they cannot run on during the next system's timing.
    """
    t0 = time.perf_counter()
    try:
        yield
    finally:
        _UNTIMED[0] += time.perf_counter() - t0


def discount(seconds: float) -> None:
    """Leave ``seconds`` out of the current :func:`time_runs` sample (see :func:`untimed`).

    For a system timed in a subprocess: the parent discounts the start-up it does not measure.
    """
    _UNTIMED[0] += seconds


def timed_samples(fn: Callable[[], float], *, runs: int, warmup: int = 1) -> Timing:
    """Like :func:`time_runs`, for functions that measure and return their own duration."""
    for _ in range(warmup):
        fn()
    return Timing(tuple(fn() for _ in range(runs)))


# -- result checks -------------------------------------------------------------------------------


class ResultError(AssertionError):
    """A benchmark produced a wrong result: its timing is meaningless."""


def check_equal(what: str, got: object, expected: object) -> None:
    if got != expected:
        raise ResultError(f"{what}: got {got!r}, expected {expected!r}")


def check_close(what: str, got: float, expected: float, *, rel: float = 1e-6) -> None:
    if abs(got - expected) > rel * max(1.0, abs(expected)):
        raise ResultError(f"{what}: got {got!r}, expected {expected!r} (rel. tolerance {rel})")


# -- optional rivals -----------------------------------------------------------------------------

_SKIPPED_PRINTED: set[str] = set()


def have(module: str) -> bool:
    """True when ``module`` is importable; else prints ``skipped: module not installed`` once."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found and module not in _SKIPPED_PRINTED:
        _SKIPPED_PRINTED.add(module)
        print(f"skipped: {module} not installed")
    return found


# -- rows and workloads --------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    workload: str
    system: str
    metric: str
    unit: str
    value: float
    lo: float | None = None
    hi: float | None = None
    ratio: float | None = None
    ratio_to: str = ""
    target: str = ""
    met: bool | None = None
    higher_is_better: bool = True
    note: str = ""


@dataclasses.dataclass
class Workload:
    key: str
    title: str
    rows: list[Row] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

    def add(self, system: str, metric: str, unit: str, value: float, **kw: Any) -> Row:
        row = Row(self.key, system, metric, unit, value, **kw)
        self.rows.append(row)
        return row

    def add_rate(
        self, system: str, items: int, timing: Timing, metric: str = "throughput", **kw: Any
    ) -> Row:
        """A throughput row (items/s) from a run timing: spread inverted accordingly."""
        return self.add(
            system,
            metric,
            "items/s",
            items / timing.median,
            lo=items / timing.hi,
            hi=items / timing.lo,
            **kw,
        )

    def add_seconds(
        self, system: str, timing: Timing, metric: str = "wall", unit: str = "s", **kw: Any
    ) -> Row:
        scale = 1000.0 if unit == "ms" else 1.0
        kw.setdefault("higher_is_better", False)
        return self.add(
            system,
            metric,
            unit,
            timing.median * scale,
            lo=timing.lo * scale,
            hi=timing.hi * scale,
            **kw,
        )

    def row(self, system: str, metric: str) -> Row | None:
        for r in self.rows:
            if r.system == system and r.metric == metric:
                return r
        return None

    def note(self, text: str) -> None:
        self.notes.append(text)

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.key,
            "title": self.title,
            "params": self.params,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
            "rows": [dataclasses.asdict(r) for r in self.rows],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Workload:
        w = cls(data["workload"], data.get("title", data["workload"]))
        w.rows = [Row(**r) for r in data.get("rows", [])]
        w.notes = list(data.get("notes", []))
        w.params = dict(data.get("params", {}))
        w.seconds = float(data.get("seconds", 0.0))
        return w


def ratio_target(value: float, base: float, minimum: float) -> tuple[float, bool]:
    """``(value / base, value / base >= minimum)``."""
    r = value / base if base else float("nan")
    return r, r >= minimum


# -- formatting ----------------------------------------------------------------------------------


def fmt_value(value: float, unit: str) -> str:
    if unit == "items/s":
        if value >= 1e6:
            return f"{value / 1e6:.2f} M/s"
        if value >= 1e3:
            return f"{value / 1e3:.1f} k/s"
        return f"{value:.0f} /s"
    if unit in ("s", "ms"):
        return f"{value:.3f} {unit}" if value < 10 else f"{value:.1f} {unit}"
    if unit == "%":
        return f"{value:+.1f} %"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit in ("", "x", "count"):
        return f"{value:g}"
    return f"{value:.3g} {unit}"


def fmt_spread(row: Row) -> str:
    if row.lo is None or row.hi is None:
        return ""
    return f"{fmt_value(row.lo, row.unit)} .. {fmt_value(row.hi, row.unit)}"


def fmt_met(met: bool | None) -> str:
    return "" if met is None else ("yes" if met else "NO")


HEADER = ("workload", "system", "metric", "value", "spread", "ratio", "target", "met?")


def table_cells(rows: Iterable[Row]) -> list[tuple[str, ...]]:
    cells = []
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
        if r.ratio is not None and r.ratio_to:
            ratio += f" {r.ratio_to}"
        cells.append(
            (
                r.workload,
                r.system,
                r.metric,
                fmt_value(r.value, r.unit),
                fmt_spread(r),
                ratio,
                r.target,
                fmt_met(r.met),
            )
        )
    return cells


def text_table(rows: Iterable[Row]) -> str:
    cells = [HEADER, *table_cells(rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(HEADER))).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: Iterable[Row]) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(esc(c) for c in cells) + " |" for cells in table_cells(rows)]
    return "\n".join(lines)


def print_workload(w: Workload) -> None:
    print(f"\n== {w.key}: {w.title}  ({w.seconds:.1f} s)")
    if w.rows:
        print(text_table(w.rows))
    for n in w.notes:
        print(f"  note: {n}")


# -- output --------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    import platform

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }
    try:
        import numpy

        info["numpy"] = numpy.__version__
        import anyio

        info["anyio"] = getattr(anyio, "__version__", "?")
    except ImportError:
        pass
    return info


def write_json(
    path: Path, workloads: Sequence[Workload], extra: dict[str, Any] | None = None
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": machine_info(),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        **(extra or {}),
        "workloads": {w.key: w.to_json() for w in workloads},
    }
    path.write_text(json.dumps(payload, indent=2, default=str))


def write_markdown(path: Path, workloads: Sequence[Workload], title: str = "Benchmarks") -> str:
    m = machine_info()
    parts = [
        f"# {title}",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {m['platform']}, {m['cpus']} CPUs, "
        f"Python {m['python']}. Values are medians after a warm-up; spread is min .. max.",
        "",
        markdown_table(r for w in workloads for r in w.rows),
    ]
    notes = [(w.key, n) for w in workloads for n in w.notes]
    if notes:
        parts += ["", "Notes:", ""] + [f"- **{k}**: {n}" for k, n in notes]
    text = "\n".join(parts) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


def draw_chart(w: Workload, directory: Path) -> Path | None:
    """One PNG per workload: a horizontal bar chart per metric, with the spread as error bars.

    Returns None (and notes it) when matplotlib is missing.
    """
    if not w.rows:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        w.note("chart skipped: matplotlib not installed")
        return None
    metrics: list[str] = []
    for r in w.rows:
        if r.metric not in metrics:
            metrics.append(r.metric)
    fig, axes = plt.subplots(
        len(metrics), 1, figsize=(9, 1.2 + 0.45 * len(w.rows) + 0.6 * len(metrics)), squeeze=False
    )
    for ax, metric in zip(axes[:, 0], metrics, strict=True):
        rows = [r for r in w.rows if r.metric == metric]
        ys = range(len(rows))
        vals = [r.value for r in rows]
        err_lo = [max(0.0, r.value - r.lo) if r.lo is not None else 0.0 for r in rows]
        err_hi = [max(0.0, r.hi - r.value) if r.hi is not None else 0.0 for r in rows]
        colors = ["tab:blue" if r.system.startswith("aiopipe") else "tab:gray" for r in rows]
        ax.barh(list(ys), vals, xerr=[err_lo, err_hi], color=colors, capsize=3)
        ax.set_yticks(list(ys), [r.system for r in rows], fontsize=8)
        ax.invert_yaxis()
        unit = rows[0].unit
        better = "higher" if rows[0].higher_is_better else "lower"
        ax.set_xlabel(f"{metric} [{unit}] ({better} is better)", fontsize=8)
        for y, r in zip(ys, rows, strict=True):
            ax.text(r.value, y, " " + fmt_value(r.value, r.unit), va="center", fontsize=7)
    fig.suptitle(f"{w.key}: {w.title}", fontsize=10)
    fig.tight_layout()
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"{w.key.lower()}.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


# -- command line --------------------------------------------------------------------------------


def standard_args(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke tests)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per system")
    parser.add_argument("--json", type=Path, default=None, help="write the workload as JSON")
    parser.add_argument("--chart", type=Path, default=None, help="directory for the PNG chart")
    return parser


def standalone(run: Callable[..., Workload], description: str, argv: list[str] | None) -> int:
    """The ``main(argv)`` of a workload module: run, print, optionally write JSON and a chart."""
    args = standard_args(description).parse_args(argv)
    w = run(quick=args.quick, runs=args.runs)
    if args.chart is not None:
        draw_chart(w, args.chart)
    print_workload(w)
    if args.json is not None:
        write_json(args.json, [w])
    return 0


def timed_workload(run: Callable[[], Workload]) -> Workload:
    t0 = time.perf_counter()
    w = run()
    w.seconds = time.perf_counter() - t0
    return w
