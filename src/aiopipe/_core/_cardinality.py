"""How many outputs a pipeline makes: an int, ``math.inf``, or ``None`` when unknown.

Worked out from the stage descriptions alone, stage by stage from the source, as tf.data's
``cardinality()``: a stage whose output count depends on the data (``filter``, ``flat_map``,
``read``, ``unbatch``, custom stages, bucketing, an error policy that skips) makes it unknown.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterable, Sequence, Sized
from typing import Any

from .engine._stage import Stage
from .stages._batch import BatchStage
from .stages._cache import CacheSource
from .stages._combine import ConcatenateSource, SampleSource, ZipSource
from .stages._map import MapStage
from .stages._repeat import RepeatSource
from .stages._shard import ShardedFiles, ShardStage
from .stages._shuffle import ShuffleStage
from .stages._simple import PrefetchStage, SkipStage, TakeStage
from .stages._sources import FromIterable, FromSequences
from .stages._sources import _is_iterator as is_iterator
from .stages._window import WindowStage

__all__ = ["Count", "cardinality"]

Count = int | float | None  # float only for math.inf


def cardinality(stages: Sequence[Stage]) -> Count:
    n: Count = None
    for stage in stages:
        n = _after(stage, n)
    return n


def _times(n: int, epochs: int | None) -> Count:
    if epochs is None:
        return math.inf if n else 0
    return n * epochs


def _after(stage: Stage, n: Count) -> Count:
    if isinstance(stage, FromSequences):
        return _times(stage.length, stage.epochs)
    if isinstance(stage, ShardedFiles):
        return _times(stage.per_epoch, stage.files.epochs)
    if isinstance(stage, FromIterable):
        obj: Any = stage.obj
        if isinstance(obj, AsyncIterable) or not isinstance(obj, Sized) or is_iterator(obj):
            return None
        return _times(len(obj), stage.epochs)
    if isinstance(stage, ZipSource):
        counts = [p.cardinality() for p in stage.pipes]
        return None if None in counts else min(counts)
    if isinstance(stage, ConcatenateSource | SampleSource):
        return _combined(stage)
    if isinstance(stage, CacheSource):
        count: Count = stage.pipe.cardinality()
        return count
    if isinstance(stage, RepeatSource):
        return _repeated(stage.pipe.cardinality(), stage.count)
    if n is None:
        return None
    return _transformed(stage, n)


def _combined(stage: ConcatenateSource | SampleSource) -> Count:
    pipes = stage.pipes
    if isinstance(stage, SampleSource):
        if stage.stop_on_empty:
            return None
        # A zero-weight pipeline is never chosen: the mix ends when the others do.
        pipes = tuple(p for p, w in zip(pipes, stage.weights, strict=True) if w > 0)
    counts = [p.cardinality() for p in pipes]
    return None if None in counts else sum(counts)


def _repeated(n: Count, count: int | None) -> Count:
    if count == 0 or n == 0:
        return 0
    if n is None:
        return None
    return math.inf if count is None else n * count


def _transformed(stage: Stage, n: int | float) -> Count:
    if isinstance(stage, MapStage):
        return n if stage.errors.on_error == "raise" else None  # retries keep the count
    if isinstance(stage, PrefetchStage | ShuffleStage):
        return n
    if isinstance(stage, TakeStage):
        return min(n, stage.n)
    if isinstance(stage, SkipStage):
        return n if n == math.inf else max(0, int(n) - stage.n)
    if n == math.inf:
        return n if isinstance(stage, BatchStage | ShardStage | WindowStage) else None
    m = int(n)
    if isinstance(stage, BatchStage):
        b = stage.batch_size
        return m // b if stage.drop_remainder else -(-m // b)
    if isinstance(stage, ShardStage):
        if stage.equal:  # every shard the same count: the last incomplete round is dropped
            return m // stage.num_shards
        return max(0, -(-(m - stage.index) // stage.num_shards))
    if isinstance(stage, WindowStage):
        if stage.drop_remainder:
            return max(0, (m - stage.span) // stage.shift + 1)
        return -(-m // stage.shift)
    return None
