"""aiopipe: async-native input pipelines for training loops (TF 1.x queues done right on anyio).

The public names live here; the code lives in ``aiopipe._core`` (pipeline engine), ``queues``,
``readers``, ``decode`` and ``tfrecord``.
"""

from __future__ import annotations

from . import decode as decode
from . import executors as executors
from . import readers as readers
from . import remote as remote
from . import tfrecord as tfrecord
from ._core._pipeline import Pipeline as Pipeline
from ._core._pipeline import from_arrays as from_arrays
from ._core._pipeline import from_files as from_files
from ._core._pipeline import from_iterable as from_iterable
from ._core.engine._coordinator import Coordinator as Coordinator
from ._core.engine._errors import AiopipeError as AiopipeError
from ._core.engine._errors import CorruptRecordError as CorruptRecordError
from ._core.engine._errors import DecodeError as DecodeError
from ._core.engine._errors import OutOfRangeError as OutOfRangeError
from ._core.engine._errors import QueueClosedError as QueueClosedError
from ._core.engine._run import Run as Run
from ._core.engine._sync import SyncIterator as SyncIterator
from ._core.observe._stats import PipelineStats as PipelineStats
from ._core.observe._stats import StageStatistics as StageStatistics
from ._core.stages._collate import collate as collate
from ._core.stages._combine import concatenate as concatenate
from ._core.stages._combine import sample_from as sample_from
from ._core.stages._combine import zip as zip
from ._core.stages._map import Executor as Executor
from ._core.stages._reader import BlockingReader as BlockingReader
from .queues import FIFOQueue as FIFOQueue
from .queues import PaddingFIFOQueue as PaddingFIFOQueue
from .queues import PriorityQueue as PriorityQueue
from .queues import QueueRunner as QueueRunner
from .queues import RandomShuffleQueue as RandomShuffleQueue
from .queues import start_queue_runners as start_queue_runners

__all__ = (
    "AiopipeError",
    "BlockingReader",
    "Coordinator",
    "CorruptRecordError",
    "DecodeError",
    "Executor",
    "FIFOQueue",
    "OutOfRangeError",
    "PaddingFIFOQueue",
    "Pipeline",
    "PipelineStats",
    "PriorityQueue",
    "QueueClosedError",
    "QueueRunner",
    "RandomShuffleQueue",
    "Run",
    "StageStatistics",
    "SyncIterator",
    "collate",
    "concatenate",
    "decode",
    "executors",
    "from_arrays",
    "from_files",
    "from_iterable",
    "readers",
    "remote",
    "sample_from",
    "start_queue_runners",
    "tfrecord",
    "zip",
)
__version__ = "0.1.0"
