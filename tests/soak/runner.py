"""``make soak``: run ``SOAK_N`` scenarios of ``SOAK_SEED`` in ``SOAK_JOBS`` worker processes.

Prints one line per scenario with problems (with what re-runs it) and last
``soak: N scenarios, K with problems``; exits 1 when K > 0. ``SOAK_ONLY=<index>`` runs one
scenario in this process and prints everything about it.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import queue
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PARENT_TIMEOUT_S = 90.0  # the worker's own watchdog fires well before this
ROOT = Path(__file__).resolve().parents[2]


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


class Slot:
    """One worker process; replaced when it exits (after a problem) or wedges."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        module = "tests.soak._worker"  # by its full name: see _worker
        proc = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: we can end all it started
        )
        self.proc = proc
        return proc

    def run(self, seed: int, index: int) -> dict[str, object]:
        proc = self.proc if self.proc is not None and self.proc.poll() is None else self._start()
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            proc.stdin.write(f"{seed} {index}\n")
            proc.stdin.flush()
        except BrokenPipeError:
            self.stop()
            return self.run(seed, index)
        ready, _, _ = select.select([proc.stdout], [], [], PARENT_TIMEOUT_S)
        line = proc.stdout.readline() if ready else ""
        if not line:
            self.stop()
            why = "worker died" if ready else f"no answer within {PARENT_TIMEOUT_S:.0f} s"
            return {"index": index, "problems": [f"hang or crash: {why}"]}
        report: dict[str, object] = json.loads(line)
        if proc.poll() is not None or _recycled(report):
            self.stop()
        return report

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()  # type: ignore[union-attr]
            proc.wait(5)
        except (subprocess.TimeoutExpired, OSError):
            pass
        # The worker's process group: whatever the worker started and left (orphaned executors).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _recycled(report: dict[str, object]) -> bool:
    from ._watchdog import RECYCLE

    problems = report["problems"]
    assert isinstance(problems, list)
    return any(str(p).startswith(RECYCLE) for p in problems)


def run_soak(n: int, seed: int, jobs: int, out: object = sys.stdout) -> int:
    """Run the soak; returns how many scenarios had problems."""
    todo: queue.Queue[int] = queue.Queue()
    for i in range(n):
        todo.put(i)
    reports: dict[int, dict[str, object]] = {}
    lock = threading.Lock()
    t0 = time.perf_counter()

    def drive() -> None:
        slot = Slot()
        try:
            while True:
                try:
                    index = todo.get_nowait()
                except queue.Empty:
                    return
                report = slot.run(seed, index)
                with lock:
                    reports[index] = report
                    if report["problems"]:
                        _print_problem(seed, report, out)
        finally:
            slot.stop()

    threads = [threading.Thread(target=drive, name=f"soak slot {j}") for j in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bad = [r for r in reports.values() if r["problems"]]
    _print_classes(bad, out)
    took = time.perf_counter() - t0
    timed = sorted((float(r.get("seconds", 0.0)), int(r["index"])) for r in reports.values())  # type: ignore[arg-type, call-overload]
    slowest = ", ".join(f"{i} ({s:.1f} s)" for s, i in reversed(timed[-3:]))
    print(f"soak: seed {seed}, {jobs} jobs, {took:.0f} s; slowest: {slowest}", file=out)  # type: ignore[call-overload]
    print(f"soak: {n} scenarios, {len(bad)} with problems", file=out)  # type: ignore[call-overload]
    return len(bad)


def _print_problem(seed: int, report: dict[str, object], out: object) -> None:
    from ._scenario import make_scenario

    index = int(report["index"])  # type: ignore[call-overload]
    problems = report["problems"]
    assert isinstance(problems, list)
    desc = make_scenario(seed, index).describe()
    print(
        f"PROBLEM seed={seed} index={index} (SOAK_SEED={seed} SOAK_ONLY={index} make soak): "
        f"{'; '.join(problems)} || {desc}",
        file=out,  # type: ignore[call-overload]
        flush=True,
    )


def problem_class(problem: str) -> str:
    """A problem message with its particulars (numbers, tokens, names) blurred, to group by."""
    text = " ".join(problem.split())
    text = re.sub(r"soak fault [\w-]+", "soak fault T", text)
    text = re.sub(r" at (0x)?[0-9a-f]+>", " at ?>", text)
    text = re.sub(r"'s\d+_(\w+)'", r"'<\1>'", text)
    text = re.sub(r"\d+", "N", text)
    return text[:140]


def _print_classes(bad: list[dict[str, object]], out: object) -> None:
    if not bad:
        return
    classes: collections.Counter[str] = collections.Counter()
    for r in bad:
        for p in set(map(problem_class, r["problems"])):  # type: ignore[call-overload]
            classes[p] += 1
    print("soak: problem classes (scenarios):", file=out)  # type: ignore[call-overload]
    for text, count in classes.most_common():
        print(f"  {count:5d}  {text}", file=out)  # type: ignore[call-overload]


def run_one(seed: int, index: int) -> int:
    """``SOAK_ONLY``: one scenario in this process, verbosely."""
    from ._execute import run_scenario
    from ._reference import model, possible_faults
    from ._scenario import make_scenario
    from ._watchdog import Watchdog

    scn = make_scenario(seed, index)
    print(f"scenario seed={seed} index={index}: {scn.describe()}")
    print(f"model: {model(scn, None, faults_on=False).outputs[:20]!r:.400}")
    print(f"possible faults: {[f.describe() for f in possible_faults(scn)]}")
    dog = Watchdog(sys.stdout)
    dog.arm(index, scn.timeout + 5)
    problems, facts = run_scenario(scn)
    dog.disarm()
    print(f"received {len(facts.received)} in {facts.seconds:.3f} s: {facts.received[:20]!r:.400}")
    if facts.exc is not None:
        import traceback

        traceback.print_exception(facts.exc, file=sys.stdout)
    for p in problems:
        print(f"PROBLEM: {p}")
    print(f"soak: 1 scenarios, {1 if problems else 0} with problems")
    return 1 if problems else 0


def main() -> None:
    seed = _env_int("SOAK_SEED", 1)
    only = os.environ.get("SOAK_ONLY", "").strip()
    if only:
        sys.exit(run_one(seed, int(only)))
    n = _env_int("SOAK_N", 1000)
    jobs = _env_int("SOAK_JOBS", 2)
    sys.exit(1 if run_soak(n, seed, jobs) else 0)
