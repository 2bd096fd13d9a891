"""QueueRunner: tasks that keep a queue filled (replaces ``tf.train.QueueRunner``).

Each enqueue op runs in its own task, called again and again. A runner ends when the coordinator
stops, when its op raises ``OutOfRangeError``/``QueueClosedError`` (input exhausted, queue closed),
or on any other exception, which is reported (to the coordinator, or to ``exceptions_raised``). When
the last runner of a QueueRunner ends, for whatever reason, the QueueRunner closes its queue, so a
consumer never waits forever. With a coordinator, a small watcher task also waits for the stop and
then closes the queue with ``cancel_pending_enqueues=True``, waking blocked producers (whose
``QueueClosedError`` ends them) and consumers. Either way the QueueRunner closes its queue once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol, final

import anyio
from anyio.abc import TaskGroup

from .._core.engine._coordinator import Coordinator
from .._core.engine._errors import OutOfRangeError, QueueClosedError

__all__ = ["QueueRunner", "start_queue_runners"]

EnqueueOp = Callable[[], Awaitable[object]]


class ClosableQueue(Protocol):
    """What a QueueRunner needs of its queue: every aiopipe queue has it."""

    def close(self, *, cancel_pending_enqueues: bool = False) -> None: ...


@final
class QueueRunner:
    """Runs ``enqueue_ops`` (async callables with no arguments) in a loop, one task each."""

    def __init__(
        self, queue: ClosableQueue, enqueue_ops: Sequence[EnqueueOp], *, name: str | None = None
    ) -> None:
        ops = list(enqueue_ops)
        if not ops:
            raise ValueError("QueueRunner needs at least one enqueue op (got an empty sequence)")
        for op in ops:
            if not callable(op):
                raise TypeError(f"QueueRunner enqueue ops must be async callables (got {op!r})")
        self._queue = queue
        self._ops = ops
        self._name = name if name is not None else f"QueueRunner({type(queue).__name__})"
        self._running = 0
        self._started = False
        self._queue_closed = False
        self._watcher: anyio.CancelScope | None = None
        self.exceptions_raised: list[BaseException] = []

    @property
    def queue(self) -> ClosableQueue:
        """The queue this runner fills and closes."""
        return self._queue

    @property
    def enqueue_ops(self) -> list[EnqueueOp]:
        """The ops, one task each."""
        return list(self._ops)

    @property
    def name(self) -> str:
        """The name used for the tasks and in error notes."""
        return self._name

    def start(self, coord: Coordinator) -> None:
        """Start one task per op in ``coord``; errors stop the coordinator."""
        self._mark_started()
        coord.start_soon(self._close_on_stop, coord, name=f"{self._name} stop watcher")
        for index, op in enumerate(self._ops):
            coord.start_soon(self._run_op, op, index, coord, name=f"{self._name} op {index}")

    def start_in(self, task_group: TaskGroup) -> None:
        """Start one task per op in ``task_group``; errors only go to ``exceptions_raised``."""
        self._mark_started()
        for index, op in enumerate(self._ops):
            task_group.start_soon(self._run_op, op, index, None, name=f"{self._name} op {index}")

    def _mark_started(self) -> None:
        if self._started:
            raise RuntimeError(f"{self._name} was already started; create a new QueueRunner")
        self._started = True
        self._running = len(self._ops)

    async def _run_op(self, op: EnqueueOp, index: int, coord: Coordinator | None) -> None:
        try:
            while coord is None or not coord.should_stop():
                await op()
        except (OutOfRangeError, QueueClosedError):
            # Input exhausted or queue closed: this runner is simply done.
            pass
        except Exception as exc:
            exc.add_note(f"aiopipe: raised in queue runner '{self._name}' op {index}")
            self.exceptions_raised.append(exc)
            # Report before closing the queue, so that the error (and not the consumer's
            # OutOfRangeError at the close) is the one the coordinator records.
            if coord is not None:
                coord.request_stop(exc)
        finally:
            self._running -= 1
            if self._running == 0:
                self._close_queue(cancel_pending_enqueues=False)

    async def _close_on_stop(self, coord: Coordinator) -> None:
        if self._queue_closed:
            return  # every runner already ended (and closed the queue) before this task ran
        with anyio.CancelScope() as self._watcher:
            await coord.wait_for_stop()
            self._close_queue(cancel_pending_enqueues=True)

    def _close_queue(self, *, cancel_pending_enqueues: bool) -> None:
        if self._queue_closed:
            return
        self._queue_closed = True
        self._queue.close(cancel_pending_enqueues=cancel_pending_enqueues)
        if self._watcher is not None:
            # Nothing left to wake at a stop: end the watcher instead of holding the coordinator.
            self._watcher.cancel()


def start_queue_runners(coord: Coordinator, runners: Iterable[QueueRunner]) -> list[QueueRunner]:
    """Start every runner in ``coord``; returns them as a list."""
    started = list(runners)
    for runner in started:
        runner.start(coord)
    return started
