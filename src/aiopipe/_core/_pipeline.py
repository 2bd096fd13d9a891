"""``Pipeline``: an immutable description of stages; nothing runs until it is opened."""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final, overload

import anyio

from .engine._policy import policy
from .engine._run import RunOpener
from .engine._stage import Stage
from .processes._process_pool import ProcessOptions
from .stages._batch import BatchStage, UnbatchStage
from .stages._bucket import BucketStage
from .stages._cache import CacheSource
from .stages._custom import CustomStage, StageFn
from .stages._interleave import InterleaveStage
from .stages._map import Executor, MapStage
from .stages._padded import PaddedCollate, check_padded_shapes
from .stages._read import ReadStage
from .stages._repeat import RepeatSource
from .stages._shard import shard_stages
from .stages._shuffle import ShuffleStage
from .stages._simple import FilterStage, FlatMapStage, PrefetchStage, SkipStage, TakeStage
from .stages._sources import FromFiles, FromIterable, FromSequences
from .stages._window import WindowStage

if TYPE_CHECKING:
    from .engine._sync import SyncIterator

__all__ = ["Pipeline", "from_arrays", "from_files", "from_iterable"]

T = TypeVar("T")
U = TypeVar("U")


@final
class Pipeline(Generic[T]):
    """An immutable chain of stages. Each method returns a new ``Pipeline``; ``open()`` runs it."""

    __slots__ = ("_stages",)

    def __init__(self, stages: Sequence[Stage]) -> None:
        self._stages = tuple(stages)

    def _then(self, stage: Stage) -> Pipeline[Any]:
        return Pipeline((*self._stages, stage))

    def __repr__(self) -> str:
        return f"Pipeline({' -> '.join(s.name for s in self._stages)})"

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self._stages]

    def cardinality(self) -> int | float | None:
        """How many outputs a run makes: an int, ``math.inf`` (forever), or ``None`` when it
        depends on the data (``filter``, ``flat_map``, ``read``, an iterator of unknown length)."""
        from ._cardinality import cardinality

        return cardinality(self._stages)

    def __len__(self) -> int:
        """The number of outputs, when known; ``TypeError`` when infinite or unknown."""
        n = self.cardinality()
        if n is None or n == math.inf:
            what = "unknown" if n is None else "infinite"
            raise TypeError(
                f"len() of a pipeline whose length is {what}: {self!r}; "
                f"use pipe.cardinality(), which returns None or math.inf then"
            )
        return int(n)

    def __bool__(self) -> bool:
        return True  # a pipeline is a description: truthy even when it would yield nothing

    # -- transforms --------------------------------------------------------------------------
    @overload
    def map(
        self,
        fn: Callable[[T], Awaitable[U]],
        *,
        workers: int = 1,
        ordered: bool = True,
        executor: str | Executor | ProcessOptions | None = None,
        name: str | None = None,
        buffer: int | None = None,
        on_error: str = "raise",
        max_errors: int | float | None = None,
        retries: int = 0,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = OSError,
    ) -> Pipeline[U]: ...
    @overload
    def map(
        self,
        fn: Callable[[T], U],
        *,
        workers: int = 1,
        ordered: bool = True,
        executor: str | Executor | ProcessOptions | None = None,
        name: str | None = None,
        buffer: int | None = None,
        on_error: str = "raise",
        max_errors: int | float | None = None,
        retries: int = 0,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = OSError,
    ) -> Pipeline[U]: ...
    def map(
        self,
        fn: Callable[[T], Any],
        *,
        workers: int = 1,
        ordered: bool = True,
        executor: str | Executor | ProcessOptions | None = None,
        name: str | None = None,
        buffer: int | None = None,
        on_error: str = "raise",
        max_errors: int | float | None = None,
        retries: int = 0,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = OSError,
    ) -> Pipeline[Any]:
        """``fn(x)`` for each element (sync or async), ``workers`` at once.

        A sync ``fn`` never freezes the event loop: with ``workers > 1`` it runs on the run's
        threads, and with one worker it runs inline only while its calls take under ~2 ms
        (``executor="inline"`` forces inline). Error policy: see :meth:`read`.
        """
        errors = policy("map", on_error, max_errors, retries, retry_on)
        stage = MapStage(
            fn,
            workers=workers,
            ordered=ordered,
            executor=executor,
            name=name,
            buffer=buffer,
            errors=errors,
        )
        return self._then(stage)

    def filter(
        self,
        pred: Callable[[T], Any],
        *,
        name: str | None = None,
        buffer: int | None = None,
        on_error: str = "raise",
        max_errors: int | float | None = None,
        retries: int = 0,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = OSError,
    ) -> Pipeline[T]:
        """Keep the elements for which ``pred(x)`` (sync or async) is true."""
        errors = policy("filter", on_error, max_errors, retries, retry_on)
        return self._then(FilterStage(pred, name, buffer, errors))

    def flat_map(
        self,
        fn: Callable[[T], Iterable[U] | AsyncIterable[U] | Awaitable[Iterable[U]]],
        *,
        name: str | None = None,
        buffer: int | None = None,
        on_error: str = "raise",
        max_errors: int | float | None = None,
        retries: int = 0,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = OSError,
    ) -> Pipeline[U]:
        """Emit the elements of the (sync or async) iterable ``fn(x)``, in order.

        Under ``on_error="skip"`` an element whose expansion fails is skipped (counted); what it
        yielded before the failure is kept. A retry re-runs ``fn(x)`` only if none of its
        expansion was sent on yet.
        """
        errors = policy("flat_map", on_error, max_errors, retries, retry_on)
        return self._then(FlatMapStage(fn, name, buffer, errors))

    def read(
        self,
        reader: Callable[[str], AsyncIterator[Any]],
        *,
        parallel: int = 1,
        keys: bool = False,
        deterministic: bool = False,
        name: str | None = None,
        buffer: int | None = None,
        on_error: str = "raise",
        max_errors: int | float | None = None,
        retries: int = 0,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = OSError,
    ) -> Pipeline[Any]:
        """Elements are paths; emit the records of ``reader(path)``, ``parallel`` files at once.

        Error policy (also ``map``, ``filter``, ``flat_map``): ``on_error="skip"`` counts a
        failing element as skipped (``stats()``'s ``skipped``, ``run.errors()``) and goes on; for
        ``read`` the element is a file, and the rest of it is skipped (its records before the
        error are delivered). ``max_errors`` (a count, or a fraction of the elements seen) is the
        budget: past it the error is raised with a note. ``retries=N`` retries an exception of
        ``retry_on`` (default ``OSError``) N times with exponential backoff and jitter; a
        retried file resumes after its delivered records, so each arrives exactly once.

        ``deterministic=True`` (with ``parallel > 1``) emits records in tf.data's interleave
        order (``cycle_length=parallel, block_length=1``): one record from each open file in
        turn; a finished file's slot takes the next path when its turn comes. Files are still
        read ahead in parallel, so the same input gives the same sequence on every run.
        Otherwise lanes emit in completion order. Either way the state resumes exactly.
        """
        errors = policy("read", on_error, max_errors, retries, retry_on)
        stage = ReadStage(
            reader,
            parallel=parallel,
            keys=keys,
            name=name,
            buffer=buffer,
            errors=errors,
            deterministic=deterministic,
        )
        return self._then(stage)

    def shuffle(
        self,
        buffer_size: int,
        *,
        min_after_dequeue: int | None = None,
        seed: int | None = None,
        name: str | None = None,
        buffer: int | None = None,
    ) -> Pipeline[T]:
        """A random-shuffle buffer (``shuffle_batch``'s RandomShuffleQueue)."""
        return self._then(
            ShuffleStage(
                buffer_size,
                min_after_dequeue=min_after_dequeue,
                seed=seed,
                name=name,
                buffer=buffer,
            )
        )

    def batch(
        self,
        batch_size: int,
        *,
        drop_remainder: bool = False,
        pad: bool = False,
        padding_value: Any = 0,
        collate: Callable[[Sequence[T]], Any] | None = None,
        name: str | None = None,
        buffer: int | None = None,
        padded_shapes: Any = None,
    ) -> Pipeline[Any]:
        """Group ``batch_size`` elements and collate them (``ap.collate`` unless ``collate=``).

        ``padded_shapes`` (tf.data's ``padded_batch``): pad every element to a fixed shape, a
        tuple of ints and ``None`` (the batch's longest in that dimension), or a tuple/dict of
        shapes mirroring the element; an element longer than its shape is a ``ValueError``.
        """
        if padded_shapes is not None:
            if collate is not None or pad:
                raise ValueError(
                    "batch(padded_shapes=) does its own padding; leave out pad=True and collate="
                )
            collate = PaddedCollate(check_padded_shapes(padded_shapes), padding_value)
        return self._then(
            BatchStage(
                batch_size,
                drop_remainder=drop_remainder,
                pad=pad,
                padding_value=padding_value,
                collate_fn=collate,
                name=name,
                buffer=buffer,
            )
        )

    def bucket_by_length(
        self,
        length_fn: Callable[[T], int],
        boundaries: Sequence[int],
        batch_sizes: Sequence[int],
        *,
        pad: bool = True,
        padding_value: Any = 0,
        drop_remainder: bool = False,
        buffer: int | None = None,
    ) -> Pipeline[Any]:
        """Batches of one length bucket each (TF's ``bucket_by_sequence_length``).

        Bucket ``i`` holds elements with ``boundaries[i-1] <= length_fn(x) < boundaries[i]``
        (the first: below ``boundaries[0]``; the last: ``>= boundaries[-1]``) and goes out when
        it has ``batch_sizes[i]`` of them, collated and (``pad``) padded to its longest. At the
        end the partial buckets go out in bucket order unless ``drop_remainder``.
        """
        return self._then(
            BucketStage(
                length_fn,
                boundaries,
                batch_sizes,
                pad=pad,
                padding_value=padding_value,
                drop_remainder=drop_remainder,
                buffer=buffer,
            )
        )

    def unbatch(self, *, name: str | None = None, buffer: int | None = None) -> Pipeline[Any]:
        """The elements of each batch (the inverse of ``batch``)."""
        return self._then(UnbatchStage(name, buffer))

    def prefetch(self, n: int) -> Pipeline[T]:
        """An ``n``-element buffer in front of whatever comes next."""
        return self._then(PrefetchStage(n))

    def take(self, n: int) -> Pipeline[T]:
        """The first ``n`` elements; upstream stops as soon as they are through."""
        return self._then(TakeStage(n))

    def skip(self, n: int) -> Pipeline[T]:
        """All but the first ``n`` elements."""
        return self._then(SkipStage(n))

    def shard(
        self, num_shards: int | None = None, index: int | None = None, *, equal: bool = False
    ) -> Pipeline[T]:
        """Shard ``index`` of ``num_shards``: files right after ``from_files``, else elements.

        With no arguments they come from ``WORLD_SIZE``/``RANK`` (torchrun) or
        ``SLURM_NTASKS``/``SLURM_PROCID``. ``equal=True`` gives every shard the same count: files
        drop each epoch's last ``n % num_shards``, elements the incomplete last round.
        """
        return Pipeline(shard_stages(self._stages, num_shards, index, equal))

    def then(
        self,
        stage: StageFn,
        *,
        workers: int = 1,
        name: str | None = None,
        buffer: int | None = None,
    ) -> Pipeline[Any]:
        """A custom stage: ``async def stage(inbox, outbox)`` on anyio memory object streams.

        ``workers`` copies of ``stage`` run at once on one shared inbox and outbox. Such a stage
        is not resumable: ``run.state_dict()`` raises ``TypeError`` naming it.

        **Resumable custom stages.** Pass an object whose class defines ``async __call__(inbox,
        outbox)`` and also ``state_dict() -> dict`` and ``load_state_dict(state) -> None``:

        - When the stage asks for input (``receive``, ``receive_nowait``, ``async for``) after
          it has sent something, aiopipe calls ``state_dict()`` (so: once per burst of outputs;
          keep it cheap), copies the dict as JSON, and notes how many inputs the stage had
          received. A checkpoint inside the stage's output stores that dict, that count and how
          many outputs the stage sent since (``{"custom": ..., "received": n, "skip": k}``), and
          the upstream's state at input ``n``.
        - So, at that point, the dict must hold everything the stage keeps from the input it has
          received (a running total, the previous element; whether it was updated before or
          after the send does not matter), and the stage's outputs must follow from the dict
          and its input alone, not from timing. Receive and send from one task.
        - At ``open(state=)`` the upstream resumes at input ``n``, ``load_state_dict(dict)`` is
          called before the stage starts, and its first ``k`` outputs are dropped (the outputs
          of at most one burst are made again). A fresh run loads the dict the object returned
          when ``then`` was called, so every run starts alike; one run at a time may use it.
        - Only ``workers=1`` (``ValueError`` otherwise: with several copies the outputs' order
          depends on timing). The state records the object's class name; another class refuses it.
        """
        return self._then(CustomStage(stage, workers=workers, name=name, buffer=buffer))

    def interleave(
        self,
        fn: Callable[[T], Any],
        *,
        cycle_length: int,
        block_length: int = 1,
        workers: int = 1,
        buffer: int | None = None,
    ) -> Pipeline[Any]:
        """The elements of ``fn(x)`` (a Pipeline, or a sync or async iterable) for each input
        ``x``, in ``tf.data.Dataset.interleave``'s deterministic order: ``cycle_length``
        sequences open at once, ``block_length`` elements from each in turn, an ended one
        replaced by the next input's. ``workers`` sequences are produced at once; the order
        does not change with it.
        """
        return self._then(
            InterleaveStage(
                fn,
                cycle_length=cycle_length,
                block_length=block_length,
                workers=workers,
                buffer=buffer,
            )
        )

    def cache(self, path: str | os.PathLike[str] | None = None) -> Pipeline[T]:
        """Compute this pipeline once, then replay it: the first run that reads it whole keeps
        its outputs in memory (``path=None``; later runs of the returned pipeline replay them)
        or in the file ``path`` (later runs, here or in another process, read the file). A run
        that stops early or fails keeps nothing, so no half cache ever looks complete.
        """
        return Pipeline((CacheSource(self, path),))

    def repeat(self, count: int | None = None) -> Pipeline[T]:
        """The whole pipeline again, ``count`` times (``None``: forever), each pass a fresh run.

        A pass that yields nothing ends the repetition rather than spinning.
        """
        return Pipeline((RepeatSource(self, count),))

    def window(
        self,
        size: int,
        *,
        shift: int | None = None,
        stride: int = 1,
        drop_remainder: bool = False,
        buffer: int | None = None,
    ) -> Pipeline[list[T]]:
        """Lists of ``size`` elements, as ``tf.data.Dataset.window``: window ``k`` starts at
        element ``k * shift`` (``shift`` defaults to ``size``) and takes every ``stride``-th
        element from there; the last windows are shorter unless ``drop_remainder``.
        """
        return self._then(
            WindowStage(
                size, shift=shift, stride=stride, drop_remainder=drop_remainder, buffer=buffer
            )
        )

    # -- running -----------------------------------------------------------------------------
    def open(
        self,
        *,
        progress: bool = False,
        trace: str | os.PathLike[str] | None = None,
        state: dict[str, Any] | None = None,
    ) -> RunOpener[T]:
        """``async with pipe.open() as run:`` starts every stage; leaving the block stops them."""
        return RunOpener(self._stages, state, progress=progress, trace=trace)

    async def collect(self) -> list[T]:
        """Every output, as a list (for small data and tests)."""
        out: list[T] = []
        async with self.open() as run:
            while True:
                try:
                    out.extend(await run.receive_chunk())
                except anyio.EndOfStream as exc:
                    if run.raised is exc:
                        raise  # a stage's OutOfRangeError, not the end of input
                    return out

    def iter_sync(
        self, *, backend: str = "asyncio", state: dict[str, Any] | None = None
    ) -> SyncIterator[T]:
        """A plain iterator (and context manager); the pipeline runs on a background thread.

        ``state``: an ``it.state_dict()`` (or ``run.state_dict()``) to resume from.
        """
        from .engine._sync import SyncIterator

        return SyncIterator(self, backend=backend, state=state)


def from_iterable(obj: Iterable[T] | AsyncIterable[T], *, epochs: int | None = 1) -> Pipeline[T]:
    """The elements of a sync or async iterable, ``epochs`` times (``None``: forever)."""
    return Pipeline((FromIterable(obj, epochs),))


def from_arrays(
    *arrays: Any, epochs: int | None = 1, shuffle: bool = False, seed: int | None = None
) -> Pipeline[Any]:
    """One element per row: ``a[i]`` for one array, ``(a[i], b[i], ...)`` for several."""
    return Pipeline((FromSequences(arrays, epochs=epochs, shuffle=shuffle, seed=seed),))


def from_files(
    patterns: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    epochs: int | None = 1,
    shuffle: bool = False,
    seed: int | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Pipeline[str]:
    """File paths matched (sorted, per pattern) when the pipeline is built.

    ``s3://``, ``gs://`` globs are matched against the bucket's listing (``storage_options``
    override the environment's credentials); ``http(s)://`` URLs are taken as given.
    """
    stage = FromFiles(
        patterns, epochs=epochs, shuffle=shuffle, seed=seed, storage_options=storage_options
    )
    return Pipeline((stage,))
