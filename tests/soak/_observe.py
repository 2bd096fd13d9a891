"""What a scenario may not leave behind: threads, processes, warnings, unraisable exceptions,
exceptions in threads, log records and bytes on stderr."""

from __future__ import annotations

import gc
import logging
import os
import re
import sys
import threading
import warnings
from types import TracebackType
from typing import Any

import psutil

# trio keeps idle worker threads in a process-wide cache for a while: they belong to trio, not
# to the run (a thread still running a job has another name).
_IDLE_TRIO = re.compile(r"Trio thread \d+")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Observer:
    """``with Observer() as obs: ...`` then ``obs.problems()`` once the run is over."""

    def __init__(self) -> None:
        self.unraisable: list[str] = []
        self.thread_errors: list[str] = []
        self._log = _Collect()

    def __enter__(self) -> Observer:
        self._threads = set(threading.enumerate())
        self._children = {p.pid for p in psutil.Process().children(recursive=True)}
        self._stderr_at = _stderr_size()
        self._warnings_cm = warnings.catch_warnings(record=True)
        self.warnings = self._warnings_cm.__enter__()
        warnings.simplefilter("always")
        self._old_unraisable = sys.unraisablehook
        self._old_excepthook = threading.excepthook
        sys.unraisablehook = self._on_unraisable
        threading.excepthook = self._on_thread_error
        logging.getLogger().addHandler(self._log)
        return self

    def _on_unraisable(self, u: Any) -> None:
        self.unraisable.append(
            f"{u.exc_type.__name__}: {u.exc_value} ({u.err_msg} {u.object!r:.80})"
        )

    def _on_thread_error(self, a: Any) -> None:
        self.thread_errors.append(f"{a.exc_type.__name__} in thread {a.thread.name}: {a.exc_value}")

    def leftovers(self) -> list[str]:
        """Threads and processes the run left; call right after the run ended."""
        problems = []
        threads = [
            t
            for t in threading.enumerate()
            if t not in self._threads and t.is_alive() and not _IDLE_TRIO.fullmatch(t.name)
        ]
        if threads:
            names = ", ".join(f"{t.name}{' (daemon)' if t.daemon else ''}" for t in threads)
            problems.append(f"thread left after exit: {names}")
        procs = [
            p
            for p in psutil.Process().children(recursive=True)
            if p.pid not in self._children and not _multiprocessing_helper(p)
        ]
        alive = [p for p in procs if _alive(p)]
        if alive:
            problems.append(f"process left after exit: {len(alive)} ({_cmd(alive[0])})")
            for p in alive:  # ours: started by this scenario's pipeline
                _kill(p)
        return problems

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        gc.collect()  # ResourceWarnings and unraisable errors of dropped objects show now
        logging.getLogger().removeHandler(self._log)
        sys.unraisablehook = self._old_unraisable
        threading.excepthook = self._old_excepthook
        self._warnings_cm.__exit__(None, None, None)

    def noise(self) -> list[str]:
        """Warnings, unraisable exceptions, thread exceptions, log records, stderr output."""
        problems = [f"warning: {w.category.__name__}: {w.message}" for w in self.warnings]
        problems += [f"unraisable: {u}" for u in self.unraisable]
        problems += [f"thread exception: {t}" for t in self.thread_errors]
        problems += [
            f"log {r.levelname} {r.name}: {r.getMessage():.200}" for r in self._log.records
        ]
        text = _stderr_since(self._stderr_at)
        if text.strip():
            problems.append(f"stderr: {text.strip()[:300]!r}")
        return problems


def _multiprocessing_helper(p: psutil.Process) -> bool:
    """multiprocessing's fork server and resource tracker: they live as long as the process that
    started them, by design (the workers they start are checked: they are children too)."""
    try:
        cmd = " ".join(p.cmdline())
    except psutil.Error:
        return False
    return "forkserver" in cmd or "resource_tracker" in cmd


def _alive(p: psutil.Process) -> bool:
    try:
        return bool(p.is_running() and p.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _cmd(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())[:100]
    except psutil.Error:
        return "?"


def _kill(p: psutil.Process) -> None:
    try:
        p.kill()
        p.wait(2)
    except psutil.Error:
        pass


def _stderr_size() -> int:
    try:
        return os.fstat(2).st_size if os.path.isfile("/proc/self/fd/2") else -1
    except OSError:
        return -1


def _stderr_since(offset: int) -> str:
    if offset < 0:
        return ""
    sys.stderr.flush()
    with open("/proc/self/fd/2", "rb") as f:
        f.seek(offset)
        return f.read(4000).decode("utf-8", "replace")
