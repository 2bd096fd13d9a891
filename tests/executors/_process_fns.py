"""Functions and exceptions the process-executor tests send to worker processes.

They live in their own module so that workers import it (and not a test module) to find them.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


def square(x: int) -> int:
    return x * x


def jittery(x: int) -> int:
    """Slow for some elements, so that slices finish out of order."""
    if x % 7 == 0:
        time.sleep(0.002)
    return x + 1


def pid_of(x: int) -> int:
    return os.getpid()


def identity(x: Any) -> Any:
    return x


def big_array(i: int) -> np.ndarray:
    """A 200 KB array whose values say which element made it."""
    return np.full((50, 1000), i, dtype=np.float32) + np.arange(1000, dtype=np.float32)


def as_is_plus_one(a: np.ndarray) -> np.ndarray:
    return a + 1


class NeedsArgs(Exception):
    """Its __init__ needs two arguments that .args does not keep: plain pickling fails."""

    def __init__(self, code: int, where: str) -> None:
        super().__init__(f"code {code} at {where}")
        self.code = code
        self.where = where


class HoldsLock(Exception):
    """Carries an attribute that cannot be pickled."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def fail_at_5(x: int) -> int:
    if x == 5:
        raise ValueError(f"bad element {x}")
    return x


def fail_needs_args(x: int) -> int:
    if x == 3:
        exc = NeedsArgs(42, "decode")
        exc.add_note("from the worker")
        raise exc
    return x


def fail_holds_lock(x: int) -> int:
    if x == 2:
        raise HoldsLock("cannot pickle me")
    return x


def fail_local_type(x: int) -> int:
    class Local(Exception):  # not importable by name in the parent
        pass

    if x == 1:
        raise Local("made inside the function")
    return x


def die_at_6(x: int) -> int:
    if x == 6:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


class SlowToLoad:
    """A callable whose unpickling in the worker announces itself and then takes a long time.

    ``marker`` gets the worker's pid once the worker is busy starting up.
    """

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __call__(self, x: int) -> int:
        return x

    def __getstate__(self) -> dict[str, Any]:
        return {"marker": self.marker}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.marker = state["marker"]
        Path(self.marker + ".tmp").write_text(str(os.getpid()))
        os.replace(self.marker + ".tmp", self.marker)  # appears with its content
        time.sleep(60)


def blocks_with_pid(marker_dir: str) -> Any:
    """For the parent-death test: each call writes the worker pid, then blocks."""
    return _Blocker(marker_dir)


class _Blocker:
    def __init__(self, marker_dir: str) -> None:
        self.marker_dir = marker_dir

    def __call__(self, x: int) -> int:
        Path(self.marker_dir, f"{os.getpid()}.pid").touch()
        time.sleep(60)
        return x


def returns_lock_at_4(x: int) -> Any:
    return threading.Lock() if x == 4 else x


def image_like(i: Any) -> np.ndarray:
    """A 19 KB float32 "image" whose values say which element made it (an int or a 0-d array)."""
    return np.full((3, 40, 40), int(i), dtype=np.float32) + np.arange(40, dtype=np.float32)


def ragged(i: int) -> np.ndarray:
    """Mostly one shape; every fifth element another, which ends the slice's stacking."""
    return np.full(4 if i % 5 == 3 else 3, i, dtype=np.int64)


def image_unless_13(i: int) -> np.ndarray:
    if i == 13:
        raise ValueError(f"bad element {i}")
    return image_like(i)


def zero_d(i: int) -> np.ndarray:
    return np.array(i * 2)


def image_of_first(pair: np.ndarray) -> np.ndarray:
    return image_like(int(pair[0]))
