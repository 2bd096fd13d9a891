"""The soak's element domain: ints, numpy scalars, str/bytes records, tuples, dicts and batches.

Every user function computes on ``weight(x)`` so that it accepts whatever shape reaches it, and
outputs are compared through ``canonical(x)`` (numpy arrays and lists become tuples).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np


class RefBatch:
    """A batch in the model: the items it was made of (collated only when compared)."""

    __slots__ = ("items",)

    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __repr__(self) -> str:
        return f"RefBatch({self.items!r})"


def weight(x: Any) -> int:
    """A deterministic int for any element the soak produces."""
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, int | np.integer):
        return int(x)
    if isinstance(x, str | bytes):
        text = x.decode("latin-1") if isinstance(x, bytes) else x
        return int(text) if text.isdigit() else sum(map(ord, text)) % 1009
    if isinstance(x, RefBatch):
        return sum(weight(i) for i in x.items)
    if isinstance(x, np.ndarray):
        return sum(weight(i) for i in x.tolist()) if x.ndim else weight(x.item())
    if isinstance(x, dict):
        return sum(weight(v) for v in x.values())
    if isinstance(x, list | tuple):
        return sum(weight(i) for i in x)
    raise TypeError(f"soak: no weight for {type(x).__name__}")


def ref_collate(items: list[Any]) -> Any:
    """What ``ap.collate`` makes of ``items``, in canonical form."""
    first = items[0]
    if isinstance(first, tuple):
        return tuple(ref_collate([it[i] for it in items]) for i in range(len(first)))
    if isinstance(first, dict):
        return tuple(sorted((k, ref_collate([it[k] for it in items])) for k in first))
    return tuple(canonical(i) for i in items)


def canonical(x: Any) -> Any:
    """A hashable, comparable form: arrays and lists become tuples, numpy scalars Python ones."""
    if isinstance(x, RefBatch):
        return ref_collate(x.items)
    if isinstance(x, np.ndarray):
        return canonical(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, list | tuple):
        return tuple(canonical(i) for i in x)
    if isinstance(x, dict):
        return tuple(sorted((k, canonical(v)) for k, v in x.items()))
    return x


def leaves(xs: Iterable[Any]) -> Counter[Any]:
    """The multiset of scalar leaves under ``xs`` (batches flattened, fields kept apart)."""
    out: Counter[Any] = Counter()
    stack = [canonical(x) for x in xs]
    while stack:
        x = stack.pop()
        if isinstance(x, tuple):
            stack.extend(x)
        else:
            out[x] += 1
    return out


def short(x: Any, limit: int = 160) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."
