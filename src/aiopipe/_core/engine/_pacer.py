"""Adaptive slice sizes: move many cheap items per step, few expensive ones.

Moving items one by one through streams costs an event-loop cycle each; moving big chunks of slow
items makes downstream wait and starves the event loop. A Pacer learns the per-item cost of a step
and proposes how many items fit in its time budget, so cheap work runs in large vectorised slices
and expensive work streams out item by item.
"""

from __future__ import annotations

__all__ = ["Pacer"]

MAX_SLICE = 4096


class Pacer:
    __slots__ = ("_budget", "_cost", "size")

    def __init__(self, budget_s: float, start: int = 1) -> None:
        self._budget = budget_s
        self._cost = 0.0  # seconds per item, smoothed; 0 until measured
        self.size = start

    def record(self, items: int, seconds: float) -> None:
        """Learn from a step that handled ``items`` in ``seconds``; updates :attr:`size`."""
        if items <= 0:
            return
        per_item = seconds / items
        self._cost = per_item if self._cost == 0.0 else 0.7 * self._cost + 0.3 * per_item
        fit = int(self._budget / self._cost) if self._cost > 0 else MAX_SLICE
        # Grow by at most 4x a step so one lucky measurement does not overshoot the budget.
        self.size = max(1, min(fit, self.size * 4, MAX_SLICE))
