"""The watchdog that turns a hang no cancellation can reach into a report, and the list of problems
after which a worker process is replaced."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from typing import Any

GRACE_S = 5.0
# Problems after which a process is not clean enough to run the next scenario.
RECYCLE = ("hang", "thread left", "process left", "task left", "escaped", "unraisable", "stderr")


class Watchdog:
    def __init__(self, out: Any) -> None:
        self.out = out
        self.deadline: float | None = None
        self.index = -1
        threading.Thread(target=self._watch, name="soak watchdog", daemon=True).start()

    def arm(self, index: int, seconds: float) -> None:
        self.index, self.deadline = index, time.monotonic() + seconds

    def disarm(self) -> None:
        self.deadline = None

    def _watch(self) -> None:
        while True:
            time.sleep(0.2)
            if self.deadline is not None and time.monotonic() > self.deadline:
                report = {
                    "index": self.index,
                    "problems": ["hang: watchdog fired"],
                    "stacks": stacks(),
                }
                self.out.write(json.dumps(report) + "\n")
                self.out.flush()
                os._exit(3)


def stacks() -> str:
    frames = sys._current_frames()
    parts = []
    for t in threading.enumerate():
        frame = frames.get(t.ident or -1)
        if frame is None or t.name == "soak watchdog":
            continue
        lines = traceback.format_stack(frame)[-6:]
        parts.append(f"--- {t.name}\n" + "".join(lines))
    return "\n".join(parts)[-6000:]
