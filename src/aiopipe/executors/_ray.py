"""Run a ``map`` stage on a Ray cluster: ``RayExecutor`` (tasks) and ``RayActorExecutor`` (actors).

``map(fn, workers=K, executor=RayExecutor())`` keeps K remote calls in flight, each carrying a
slice of elements (``chunk=``, or ~200 ms of work from the per-element time measured on the
workers), so Ray's cost per call (ms of CPU in the driver and again in the worker) is spread over
many elements. How the pieces fit:

- **Connecting.** Ray must be initialised from the main thread (a node started from another
  thread dies seconds later), and a pipeline may run on ``iter_sync``'s background thread. So the
  executor connects when it is *constructed*: to the running Ray if ``ray.init`` was already
  called, else to ``address`` or ``$RAY_ADDRESS``, else it starts a local Ray that it owns and
  stops on ``close()`` (or ``with``, or at interpreter exit).
- **Waiting.** ``await ref`` only works on asyncio; ``ref.future()`` is a
  ``concurrent.futures.Future`` whose done-callback wakes the event loop through its thread-safe
  entry point, on asyncio and trio alike, with no thread per call.
- **Cancelling.** Dropping a wait leaves the remote call running (and the ones queued behind it).
  When the run is left, every call in flight is ``ray.cancel``-ed under a shielded scope and
  awaited: a running task gets a ``KeyboardInterrupt``, one that ignores it is killed after
  ``CANCEL_GRACE_S``; a call that has not started is dropped. An actor's running call cannot be
  interrupted (its state could break): it finishes, as a thread's would.
- **Errors.** The worker sends exceptions through :mod:`._portable`, so the driver re-raises the
  original type with its message, attributes and notes (custom ``__init__`` included) and the
  remote traceback as ``__cause__``; a ``RayTaskError`` is unwrapped to its ``.cause``. Ray's own
  failures (a worker killed mid-call, an actor that died) are raised as they are; the stage's note
names the first element of the lost call.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import operator
import os
import pickle
import threading
import time
from collections.abc import Callable, Mapping
from types import ModuleType, TracebackType
from typing import Any, Self

import anyio

from ._portable import Carried, carry

__all__ = ["RayActorExecutor", "RayExecutor"]

INSTALL_HINT = "Ray is not installed: pip install 'aiopipe[ray]'"
IMPORT_HINT = (
    "aiopipe: the Ray workers cannot import the module of the map's function: install it there, "
    "or pass runtime_env={'working_dir': ...} or {'py_modules': [...]} to the executor"
)
# Work one call should carry when chunk= is not given. A Ray call costs ~1-5 ms of CPU in the
# driver and again in the worker (measured on 2 cores: calls of one 20 ms element took 60 % more
# worker CPU than calls of eight).
CALL_BUDGET_S = 0.2
MAX_CHUNK = 4096
# How long a cancelled task may take to notice its KeyboardInterrupt before its worker is killed.
CANCEL_GRACE_S = 1.0
# How long leaving a run waits for a cancelled call to be confirmed stopped.
CANCEL_WAIT_S = 30.0

_lock = threading.Lock()
_owners = 0  # executors sharing the Ray they started; the last to close shuts it down


def _import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return ray


def _connect(ray: ModuleType, address: str | None) -> bool:
    """Make sure Ray is initialised; True when this call started (and so owns) the connection."""
    global _owners
    with _lock:
        if ray.is_initialized():
            if _owners:
                _owners += 1
                return True
            return False  # the user's own ray.init: theirs to shut down
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(
                "a Ray executor must be created in the main thread when Ray is not initialised "
                "yet (a Ray node started from another thread dies): create it, or call "
                "ray.init(), in the main thread before opening the pipeline"
            )
        target = address if address is not None else os.environ.get("RAY_ADDRESS") or "local"
        options: dict[str, Any] = {"address": target}
        if target == "local":
            options["include_dashboard"] = False
        ray.init(**options)
        _owners = 1
        return True


def _disconnect(ray: ModuleType) -> None:
    global _owners
    with _lock:
        _owners -= 1
        if _owners == 0 and ray.is_initialized():
            ray.shutdown()


def run_remote(fn: Callable[..., Any], /, *args: Any) -> tuple[Any, float]:
    """On the worker: ``fn(*args)`` (any exception made portable) and the seconds it took."""
    t0 = time.perf_counter()
    try:
        out = carry(fn(*args))
    except Exception as exc:
        out = _Raised(Carried(exc))
    return out, time.perf_counter() - t0


def run_packed(head: bytes, /, *rest: Any) -> tuple[Any, float]:
    """On the worker: ``run_remote(*head, *rest)``, ``head`` pickled (and unpickled) once."""
    call = _HEADS.get(head)
    if call is None:
        if len(_HEADS) >= 64:
            _HEADS.clear()
        call = _HEADS[head] = pickle.loads(head)
    return run_remote(*call, *rest)


_HEADS: dict[bytes, tuple[Any, ...]] = {}  # per worker process: pickled heads already loaded


class _Raised:
    """``fn`` itself raised (rather than returning a failure record)."""

    __slots__ = ("carried",)

    def __init__(self, carried: Carried) -> None:
        self.carried = carried

    def __reduce__(self) -> tuple[object, ...]:
        return (_Raised, (self.carried,))


class _ActorHost:
    """The actor: one instance of the user's class, lent to each call as ``fn``'s first argument."""

    def __init__(self, cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # A failing __init__ is reported by ready(): Ray would lose an exception that cannot be
        # pickled, and the driver wants the original.
        self.failed: _Raised | None = None
        try:
            self.obj = cls(*args, **kwargs)
        except Exception as exc:
            self.failed = _Raised(Carried(exc))

    def ready(self) -> _Raised | None:
        return self.failed

    def call(
        self, apply: Callable[..., Any], fn: Callable[..., Any], /, *args: Any
    ) -> tuple[Any, float]:
        return run_remote(apply, functools.partial(fn, self.obj), *args)


def _waker(event: anyio.Event) -> Callable[[], None]:
    """A callable that sets ``event`` from any thread, without blocking that thread."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        import trio

        token = trio.lowlevel.current_trio_token()
        return lambda: _quietly(token.run_sync_soon, event.set)
    return lambda: _quietly(loop.call_soon_threadsafe, event.set)


def _quietly(schedule: Callable[[Callable[[], None]], object], fn: Callable[[], None]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting any more
        schedule(fn)


class _RayBase:
    _ray: ModuleType
    _owned: bool = False
    _is_actor_call = False
    _fixed: int | None = None
    _cost = 0.0  # seconds of remote work per element, smoothed; 0 until measured

    @property
    def chunk(self) -> int | None:
        """Elements per call: ``chunk=``, else ~200 ms of the remote work measured so far.

        Measured on the worker, so time spent queued in the cluster (more calls in flight than
        CPUs) does not shrink the calls. ``None`` until the first call returns (the stage starts
        small and grows).
        """
        if self._fixed is not None:
            return self._fixed
        if self._cost <= 0.0:
            return None
        return max(1, min(MAX_CHUNK, int(CALL_BUDGET_S / self._cost)))

    def _learn(self, args: tuple[Any, ...], seconds: float) -> None:
        n = len(args[-1]) if args and isinstance(args[-1], list) else 0
        if n:
            per = seconds / n
            self._cost = per if self._cost == 0.0 else 0.7 * self._cost + 0.3 * per

    def _start(self, address: str | None) -> None:
        self._ray = _import_ray()
        self._owned = _connect(self._ray, address)

    def close(self) -> None:
        """Stop the local Ray this executor started (shared ones are left running)."""
        if self._owned:
            self._owned = False
            _disconnect(self._ray)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def _wait(self, ref: Any, args: tuple[Any, ...]) -> Any:
        """The result of ``ref``, awaited without a thread; cancelled remotely if we are."""
        fut = ref.future()
        done = anyio.Event()
        wake = _waker(done)
        fut.add_done_callback(lambda _: wake())
        try:
            await done.wait()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._cancel(ref, done)
            raise
        return self._unpack(fut, args)

    async def _cancel(self, ref: Any, done: anyio.Event) -> None:
        ray = self._ray
        ray.cancel(ref)
        if not self._is_actor_call:
            with anyio.move_on_after(CANCEL_GRACE_S):
                await done.wait()
            if not done.is_set():
                ray.cancel(ref, force=True)  # ignores KeyboardInterrupt: end its worker
        with anyio.move_on_after(CANCEL_WAIT_S):
            await done.wait()

    def _unpack(self, fut: Any, args: tuple[Any, ...]) -> Any:
        try:
            res, seconds = fut.result()
        except self._ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from None
            raise
        except self._ray.exceptions.RayError as err:
            if "No module named" in str(err):
                err.add_note(IMPORT_HINT)
            raise
        if isinstance(res, _Raised):
            raise res.carried.restore()
        exc = getattr(res, "exc", None)
        if isinstance(exc, Carried):  # fn failed part-way: its time says nothing per element
            res.exc = exc.restore()
        else:
            self._learn(args, seconds)
        return res


class RayExecutor(_RayBase):
    """Run ``map``'s calls as Ray tasks: ``map(fn, workers=K, executor=RayExecutor())``.

    ``address``: a Ray address to connect to (default: ``$RAY_ADDRESS``, else a local Ray started
    here, owned by this executor and stopped by ``close()``). Ray must be created from the main
    thread, so this connects at construction. ``runtime_env``: Ray's runtime environment for the
    tasks (``{"pip": [...], "working_dir": ...}``); aiopipe itself must be importable there.
    ``chunk``: elements per remote call (default: adaptive, ~200 ms of remote work per call; use
    one executor per map stage, since it learns the cost of the stage's function).
    ``remote_options``: Ray's task options (``num_cpus=``, ``max_retries=``, ``resources=``...).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        runtime_env: Mapping[str, Any] | None = None,
        chunk: int | None = None,
        **remote_options: Any,
    ) -> None:
        self._fixed = _check_chunk(chunk)
        ray = _import_ray()
        options = dict(remote_options)
        if runtime_env is not None:
            options["runtime_env"] = dict(runtime_env)
        # Ray validates option names and values here: a typo fails now, not in the run.
        self._task = ray.remote(run_packed).options(**options)
        self._head: tuple[tuple[Any, ...], bytes] | None = None
        self._start(address)

    def __repr__(self) -> str:
        return f"RayExecutor(chunk={self.chunk})"

    async def submit(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        """``fn(*args)`` as a Ray task; the original exception if it raised."""
        # The leading functions (map's apply_slice and fn) are pickled once, the data every call.
        k = 0
        while k < len(args) and callable(args[k]):
            k += 1
        head = self._pickled((fn, *args[:k]))
        return await self._wait(self._task.remote(head, *args[k:]), args)

    def _pickled(self, head: tuple[Any, ...]) -> bytes:
        """``head`` (callables only) pickled once while the same objects come."""
        last = self._head
        if last is None or len(last[0]) != len(head) or any(map(operator.is_not, last[0], head)):
            self._head = last = (head, bytes(self._ray.cloudpickle.dumps(head)))
        return last[1]


class RayActorExecutor(_RayBase):
    """Run ``map``'s calls on ``num_actors`` Ray actors, each holding one ``cls(*args, **kwargs)``.

    The map's ``fn`` is called as ``fn(instance, x)`` on an actor: pass an unbound method
    (``map(Tokenizer.encode, executor=RayActorExecutor(Tokenizer, "vocab.txt", num_actors=2))``)
    or any function of ``(instance, x)``. State kept in the instance lasts across calls and runs.
    Each call goes to the actor with the fewest calls in flight; ``workers`` of the map should be
    at least ``num_actors`` to keep them all busy. ``actor_options``: Ray's actor options
    (``num_cpus=``, ``max_restarts=``...). The actors are created (and ``cls.__init__`` errors
    raised) here; ``close()`` ends them.
    """

    _is_actor_call = True

    def __init__(
        self,
        cls: type,
        *args: Any,
        num_actors: int,
        actor_options: Mapping[str, Any] | None = None,
        chunk: int | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(cls, type):
            raise TypeError(f"RayActorExecutor needs a class, got {cls!r}")
        if isinstance(num_actors, bool) or not isinstance(num_actors, int) or num_actors < 1:
            raise ValueError(
                f"RayActorExecutor(num_actors=) must be an int >= 1, got {num_actors!r}"
            )
        self._fixed = _check_chunk(chunk)
        self.cls = cls
        ray = _import_ray()
        actor_cls = ray.remote(_ActorHost).options(**dict(actor_options or {}))
        self._start(None)
        self._actors = [actor_cls.remote(cls, args, kwargs) for _ in range(num_actors)]
        self._load = [0] * num_actors
        try:
            failed = [r for r in ray.get([a.ready.remote() for a in self._actors]) if r]
        except BaseException:
            self.close()
            raise
        if failed:
            self.close()
            raise failed[0].carried.restore()

    def __repr__(self) -> str:
        return f"RayActorExecutor({self.cls.__name__}, num_actors={len(self._actors)})"

    async def submit(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        """``fn(*args)`` on an actor, the first of ``args`` bound to the actor's instance."""
        if not args or not callable(args[0]):
            raise TypeError(
                "RayActorExecutor.submit(fn, f, *rest) runs fn(partial(f, instance), *rest); "
                f"got no callable after {fn!r}"
            )
        i = min(range(len(self._actors)), key=self._load.__getitem__)
        self._load[i] += 1
        try:
            return await self._wait(self._actors[i].call.remote(fn, *args), args)
        finally:
            self._load[i] -= 1

    def close(self) -> None:
        """End the actors (their state is lost) and the local Ray if this executor started it."""
        for actor in getattr(self, "_actors", ()):
            self._ray.kill(actor)
        self._actors = []
        super().close()


def _check_chunk(chunk: object) -> int | None:
    if chunk is None:
        return None
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk= must be a positive int (elements per remote call), got {chunk!r}")
    return chunk
