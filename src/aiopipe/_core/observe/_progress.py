"""The live progress bar of ``pipe.open(progress=True)`` (the ``progress`` extra: tqdm).

The bar shows what reached the consumer (count, rate, elapsed) and, live, which stage is the
bottleneck. It is drawn only when stderr is a terminal, so logs and CI output stay clean;
``AIOPIPE_PROGRESS=always`` draws it anyway and ``AIOPIPE_PROGRESS=never`` turns it off.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

import anyio

if TYPE_CHECKING:
    from ._stats import RunView

__all__ = ["ProgressBar", "progress_enabled"]

REFRESH_S = 0.2
ENV = "AIOPIPE_PROGRESS"
HINT = "progress=True needs tqdm: pip install 'aiopipe[progress]'"


def progress_enabled(stream: TextIO) -> bool:
    """Whether to draw: ``AIOPIPE_PROGRESS`` decides, else draw only on a terminal."""
    mode = os.environ.get(ENV, "auto").strip().lower()
    if mode in ("always", "1", "true", "yes"):
        return True
    if mode in ("never", "0", "false", "no"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class ProgressBar:
    """Draws a tqdm bar from ``run.stats()`` about five times a second until cancelled."""

    def __init__(self, run: RunView) -> None:
        try:
            from tqdm.auto import tqdm
        except ImportError:  # one clear line instead of a bare "No module named 'tqdm'"
            raise ImportError(HINT) from None
        self._tqdm = tqdm
        self._run = run

    async def run(self) -> None:
        stream = sys.stderr
        if not progress_enabled(stream):
            return
        bar = self._tqdm(
            desc="aiopipe", unit=" items", file=stream, dynamic_ncols=True, total=self._total()
        )
        try:
            while True:
                await anyio.sleep(REFRESH_S)
                self._update(bar)
        finally:
            # Cancellation is how the run stops us: draw the final count, then leave the line.
            self._update(bar)
            bar.close()

    def _total(self) -> int | None:
        """The run's length when known: the bar then shows a percentage and an ETA."""
        n = self._run.length
        return n if isinstance(n, int) else None

    def _update(self, bar: Any) -> None:
        stats = self._run.snapshot()
        consumer = stats[-1]
        bar.update(consumer.items_in - bar.n)
        slow = stats.bottleneck
        bar.set_postfix_str(
            f"bottleneck={slow.name}" if slow is not None else "starting", refresh=False
        )
