"""Error policies: raise (the default), skip within a budget, retry with backoff.

Real data sets have bad records, and a long job should not die on one JPEG; nor should a skip ever
be silent. A skipped element is counted per stage (``stats()``'s ``skipped``) and kept, with its
exception and origin, in the run's :class:`ErrorLog` (``run.errors()``). Past ``max_errors`` the
next error is raised with a note saying the budget ran out.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import anyio

from ._stage import annotate

__all__ = [
    "RAISE",
    "ErrorLog",
    "ErrorPolicy",
    "SkippedError",
    "StageErrors",
    "apply_with_policy",
    "policy",
]

# The most recent skips kept for inspection; the counts are always exact.
KEPT_ERRORS = 100
BACKOFF_BASE_S = 0.05
BACKOFF_MAX_S = 5.0


class SkippedError(NamedTuple):
    """One element a stage skipped under ``on_error="skip"``."""

    stage: str
    element: int | None  # 0-based index in the stage's input, when known
    origin: str | None  # where it came from ("record 3 of /x.tfrecord"), when known
    exception: BaseException


@dataclass(frozen=True)
class ErrorPolicy:
    on_error: str = "raise"
    max_errors: int | float | None = None
    retries: int = 0
    retry_on: tuple[type[BaseException], ...] = (OSError,)

    @property
    def is_default(self) -> bool:
        return self.on_error == "raise" and self.retries == 0

    def retryable(self, exc: BaseException, attempt: int) -> bool:
        return attempt < self.retries and isinstance(exc, self.retry_on)

    @staticmethod
    def delay(attempt: int) -> float:
        """Exponential backoff with full jitter: uniform in [0, base * 2**attempt], capped."""
        return random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt))


RAISE = ErrorPolicy()


def policy(
    what: str,
    on_error: str,
    max_errors: int | float | None,
    retries: int,
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
) -> ErrorPolicy:
    """Validate a stage's error-policy arguments at build time."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"{what}(on_error=) must be 'raise' or 'skip', got {on_error!r}")
    if max_errors is not None:
        if on_error != "skip":
            raise ValueError(f"{what}(max_errors=) needs on_error='skip'")
        _check_budget(what, max_errors)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"{what}(retries=) must be a non-negative int, got {retries!r}")
    classes = retry_on if isinstance(retry_on, tuple) else (retry_on,)
    if not classes or not all(
        isinstance(c, type) and issubclass(c, BaseException) for c in classes
    ):
        raise ValueError(
            f"{what}(retry_on=) must be an exception class or a tuple of them, got {retry_on!r}"
        )
    return ErrorPolicy(on_error, max_errors, retries, classes)


def _check_budget(what: str, max_errors: object) -> None:
    count = isinstance(max_errors, int) and not isinstance(max_errors, bool) and max_errors >= 0
    fraction = isinstance(max_errors, float) and 0.0 <= max_errors < 1.0
    if count or fraction:
        return
    raise ValueError(
        f"{what}(max_errors=) must be a count (int >= 0) or a fraction of the elements seen "
        f"(float in [0, 1)), got {max_errors!r}"
    )


class StageErrors:
    """One stage's side of the policy in one run: retries, skips and the budget."""

    def __init__(self, stage: str, policy: ErrorPolicy, log: ErrorLog) -> None:
        self.stage = stage
        self.policy = policy
        self.log = log
        self.skipped = 0

    async def retry(self, exc: BaseException, attempt: int) -> bool:
        """Wait before another attempt and say True, or say False when the error stands."""
        if not self.policy.retryable(exc, attempt):
            return False
        await anyio.sleep(self.policy.delay(attempt))
        return True

    def skip(self, exc: BaseException, element: int | None, origin: str | None, seen: int) -> bool:
        """Count ``exc`` as a skipped element (True), or annotate it as the error that ends the
        stage (False). ``seen``: elements the stage has taken so far, for a fractional budget."""
        annotate(exc, self.stage, element, origin or "")
        if self.policy.on_error != "skip":
            return False
        budget = self.policy.max_errors
        # A fraction is of the elements seen so far, and always allows one error: the first
        # element of a run failing is not yet a rate.
        over = budget is not None and (
            self.skipped + 1 > budget
            if isinstance(budget, int)
            else self.skipped + 1 > max(1.0, budget * seen)
        )
        if over:
            exc.add_note(
                f"aiopipe: stage '{self.stage}' had already skipped {self.skipped} errors; "
                f"max_errors={budget!r} ran out"
            )
            return False
        self.skipped += 1
        self.log.add(SkippedError(self.stage, element, origin, exc))
        return True


class ErrorLog:
    """The skips of one run, for ``run.errors()``."""

    def __init__(self) -> None:
        self._recent: deque[SkippedError] = deque(maxlen=KEPT_ERRORS)
        self._stages: dict[int, StageErrors] = {}

    def for_stage(self, key: object, stage: str, policy: ErrorPolicy) -> StageErrors:
        errs = StageErrors(stage, policy, self)
        self._stages[id(key)] = errs
        return errs

    def skipped(self, key: object) -> int:
        errs = self._stages.get(id(key))
        return errs.skipped if errs is not None else 0

    def add(self, record: SkippedError) -> None:
        self._recent.append(record)

    def recent(self) -> list[SkippedError]:
        return list(self._recent)


async def apply_with_policy(
    call: Callable[[list[Any]], Awaitable[Any]],
    items: list[Any],
    base: int,
    errs: StageErrors,
    failed: type[Any],
) -> Any:
    """``call(items)`` (a slice returning results or a ``_Failed``), with retries and skips.

    ``failed`` is the class of a failed slice (``done``, ``exc``). Returns the results of every
    element not skipped, or ``failed(done, exc)`` for the error that ends the stage (``done``:
    the results before it, which still count).
    """
    out: list[Any] = []
    pos, attempt = 0, 0
    while pos < len(items):
        res = await call(items[pos:] if pos else items)
        if not isinstance(res, failed):
            out.extend(res)
            return out
        done: list[Any] = res.done
        exc: BaseException = res.exc
        out.extend(done)
        if done:
            pos, attempt = pos + len(done), 0
        if await errs.retry(exc, attempt):
            attempt += 1
            continue
        if not errs.skip(exc, base + pos, None, base + pos + 1):
            return failed(out, exc)
        pos, attempt = pos + 1, 0
    return out
