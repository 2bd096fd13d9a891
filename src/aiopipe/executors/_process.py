"""``ProcessExecutor``: ``map(executor="process")`` with its settings spelled out.

The pool itself lives in the core (``aiopipe._core.processes._process_pool``), because ``map``
starts and stops it with the stage and the core imports nothing from its sibling packages; this
module is its public face.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._core.processes._process_pool import ProcessOptions, RemoteError, WorkerProcessError

__all__ = ["ProcessExecutor", "RemoteError", "WorkerProcessError"]


@dataclass(frozen=True)
class ProcessExecutor(ProcessOptions):
    """Run a sync ``fn`` in worker processes: ``map(fn, workers=N, executor=ProcessExecutor())``.

    Each of the N workers of the stage is one process, started when the run starts (``fn`` is
    sent to it once) and stopped when the run ends, whatever ends it; it also exits if the parent
    dies. Slices of many elements go to it per call; numpy arrays of at least
    ``shared_memory_threshold`` bytes (in either direction) travel through shared memory that is
    reused once the receiver drops them, up to ``max_shared_bytes`` per worker and direction
    (beyond that they are pickled).

    ``start_method``: ``"forkserver"`` (the default where it exists: workers start in
    milliseconds from a server with aiopipe preloaded) or ``"spawn"``. ``"fork"`` is refused: it
    is not safe in a parent with threads. Either way, a script must start its pipeline under
    ``if __name__ == "__main__":`` (workers import the main module); one that does not gets a
    :class:`WorkerProcessError` saying so.
    """
