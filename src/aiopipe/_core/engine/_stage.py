"""What every stage is: an immutable spec that makes a per-run runner of N worker tasks."""

from __future__ import annotations

import abc
import contextlib
import inspect
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._channel import Inbox, Outbox
from ._state import Unresumable, resolve
from ._threads import ThreadPool

if TYPE_CHECKING:
    from ._policy import ErrorLog

__all__ = [
    "DEFAULT_BUFFER",
    "MIN_DEFAULT_BUFFER",
    "RunContext",
    "Runner",
    "Source",
    "Stage",
    "annotate",
    "failed_element",
    "fn_name",
    "is_async_callable",
    "maybe_aclosing",
    "buffer_arg",
    "positive",
    "resolve_buffers",
]

# A stage's output buffer holds this many *input* elements by default: after batch(n) it holds
# DEFAULT_BUFFER // n batches, so memory stays near what the source produces, not n times it.
DEFAULT_BUFFER = 512
MIN_DEFAULT_BUFFER = 4


def _error_log() -> ErrorLog:
    from ._policy import ErrorLog  # _policy builds on this module

    return ErrorLog()


@dataclass
class RunContext:
    """What a run hands its stages while they are made: the seeds of this run.

    A stage given ``seed=None`` gets a fresh random seed, recorded in :attr:`drawn` so that the
    run's state can replay it; a resumed run takes them back from ``resume_seeds`` in order.
    """

    resume_seeds: list[int] = field(default_factory=list)
    drawn: list[int] = field(default_factory=list)
    # The run's own threads for blocking calls; closed (and joined) when the run ends.
    threads: ThreadPool = field(default_factory=ThreadPool)
    # Elements skipped under on_error="skip", for run.errors() and stats().
    errors: ErrorLog = field(default_factory=_error_log)

    def seed_for(self, given: int | None) -> int:
        if given is not None:
            return given
        seed = self.resume_seeds.pop(0) if self.resume_seeds else secrets.randbits(63)
        self.drawn.append(seed)
        return seed


class Runner(abc.ABC):
    """The per-run side of a stage: its shared state and the body of each worker.

    The state contract (see ``_state``): every chunk a runner sends carries a position, ``(self,
    mark, k)``. ``resolve`` turns a mark into this stage's JSON state ``k`` outputs after it
    (resolving the input positions the mark holds); ``restore`` takes such a state back before
    the workers start. Two kinds of stage need no code of their own: one-to-one ordered stages
    with no state (an ordered map, prefetch) send their input's position unchanged, and a stage
    whose outputs follow from its state and input may use the mark ``(state, up)``: "my state
    was ``state`` with my input at ``up``; replay and drop ``k`` outputs".
    """

    slot = 0  # this stage's place in the run; set by the run

    @abc.abstractmethod
    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        """Move elements from ``inbox`` to ``outbox`` until the input ends (a transform)."""

    def origin(self, index: int) -> str | None:
        """Where output ``index`` of this stage came from ("line 19 of /x.csv"), if known."""
        return None

    def resolve(self, mark: Any, k: int, out: dict[int, Any]) -> dict[str, Any]:
        """This stage's state ``k`` outputs after ``mark``; writes its upstream's into ``out``."""
        if isinstance(mark, tuple) and len(mark) == 2 and isinstance(mark[0], dict):
            own, up = mark
            if up is not None:
                resolve(up, out)
            return {**own, "skip": k} if k else dict(own)
        raise Unresumable(f"aiopipe: stage {type(self).__name__} cannot save its state")

    def restore(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Take back a state ``resolve`` wrote, before any worker starts ("skip" is the
        engine's: it drops that many outputs)."""


class Source(Runner):
    """The per-run side of a stage that has no input (the first of a pipeline)."""

    @abc.abstractmethod
    async def produce(self, worker: int, outbox: Outbox) -> None:
        """Send this source's elements to ``outbox``, then return."""

    async def work(self, worker: int, inbox: Inbox, outbox: Outbox) -> None:
        raise TypeError(f"{type(self).__name__} is a source: it takes no input")


class Stage(abc.ABC):
    """An immutable stage description; ``runner()`` makes the per-run state."""

    name: str
    workers: int = 1
    # The output stream's capacity in elements; None: the default for where the stage sits
    # (see resolve_buffers).
    buffer: int | None = None
    # True when output i is made from input i (map, prefetch): lets errors point to the record.
    one_to_one: bool = False

    # True when the stage implements the state contract (see Runner): a run whose stages all
    # do can save an exact state_dict().
    resumable: bool = False

    @abc.abstractmethod
    def runner(self, ctx: RunContext) -> Runner: ...

    def params(self) -> dict[str, Any]:
        """The parameters a saved state must have been made with (JSON values): resuming with
        others could not be exact. Compared at ``open(state=)``."""
        return {}

    def check_restore(self, state: dict[str, Any] | None) -> None:  # noqa: B027 - optional
        """Refuse, at ``open(state=)``, a saved state this stage cannot resume exactly
        (``None``: the stage had not started)."""

    def why_unresumable(self) -> str:
        """What ``state_dict()`` says when this stage is not ``resumable``: why, or what to do."""
        return "a custom stage can implement state_dict() and load_state_dict() (see Pipeline.then)"

    def scale(self, upstream: int, batches: list[int]) -> int:
        """How many source elements one output element stands for, given the input's."""
        return upstream

    # How many tasks run this stage, when not one per worker (helpers of its own, or several
    # tasks per worker process); ``task_count`` is what the run starts.
    tasks: int | None = None

    @property
    def task_count(self) -> int:
        return self.tasks if self.tasks is not None else self.workers


def resolve_buffers(stages: Sequence[Stage]) -> list[int]:
    """Every stage's output capacity: the one given, or a default counted in source elements."""
    sizes: list[int] = []
    scale, batches = 1, list[int]()  # batch sizes not yet undone by an unbatch
    for stage in stages:
        scale = stage.scale(scale, batches)
        if stage.buffer is not None:
            sizes.append(stage.buffer)
        else:
            default = max(MIN_DEFAULT_BUFFER, DEFAULT_BUFFER // max(1, scale))
            # Room for one output per worker: with fewer, workers that finish together wait
            # for room in turn, each wait an event and a chain of coroutines (read(parallel=1024)
            # of small objects did so all the time). The waiting workers would hold those
            # outputs anyway.
            sizes.append(max(default, stage.workers))
    return sizes


def buffer_arg(what: str, buffer: int | None) -> int | None:
    """Validate a ``buffer=`` argument at build time (None: the default)."""
    return None if buffer is None else positive(f"{what}(buffer=)", buffer)


def annotate(exc: BaseException, stage: str, index: int | None, where: str = "") -> None:
    """Add the PEP 678 note saying where ``exc`` came from (once per exception)."""
    if any(n.startswith("aiopipe: raised in") for n in getattr(exc, "__notes__", ())):
        return
    note = f"aiopipe: raised in stage '{stage}'"
    if index is not None:
        note += f" on element {index}"
    if where:
        note += f" ({where})"
    exc.add_note(note)
    if index is not None:
        # An exception class with __slots__ cannot carry it: no origin lookup then.
        with contextlib.suppress(AttributeError):
            exc._aiopipe_element = (stage, index)  # type: ignore[attr-defined]


def failed_element(exc: BaseException, stage: str) -> int | None:
    """The input index ``annotate`` recorded for ``exc`` in ``stage``, if any."""
    got = getattr(exc, "_aiopipe_element", None)
    return got[1] if isinstance(got, tuple) and got[0] == stage else None


def maybe_aclosing(it: Any) -> Any:
    """``async with`` this to close an async generator in the task that iterated it."""
    return contextlib.aclosing(it) if hasattr(it, "aclose") else contextlib.nullcontext()


def fn_name(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return str(name)


def is_async_callable(fn: Callable[..., Any]) -> bool:
    while hasattr(fn, "func"):  # functools.partial
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async __call__ on an instance
    )


def positive(what: str, value: object) -> int:
    """Validate a positive int argument at build time with a message that says how to fix it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive int (>= 1), got {value!r}")
    return value
