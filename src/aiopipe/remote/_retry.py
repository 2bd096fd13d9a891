"""``RetryPolicy``: which failures are retried, how often, and how long to wait between tries.

Exponential backoff with full jitter (AWS's "full jitter": a uniform draw below the capped
exponential), and the server's ``Retry-After`` honoured when it gives one. One object, shareable:
the remote reads use it per request, and a stage's ``retries=``/``retry_on=`` can be expressed as
one (``RetryPolicy(retries=3, retry_on=(TimeoutError,))``).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from ._errors import TransientError

__all__ = ["RetryPolicy"]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Retry ``retry_on`` failures up to ``retries`` times, waiting ``backoff * 2**n`` (capped at
    ``max_backoff``, times a uniform jitter in ``[1 - jitter, 1]``) or the server's Retry-After.

    The default retries transient storage failures (5xx, 429, 408, a reset or dropped connection,
    a timeout) 5 times over about 3 s. ``RetryPolicy(retries=0)`` fails at the first error.
    """

    retries: int = 5
    backoff: float = 0.1
    max_backoff: float = 5.0
    jitter: float = 1.0
    retry_on: tuple[type[BaseException], ...] = (TransientError,)
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"RetryPolicy needs retries >= 0 (an int), got {self.retries!r}")
        for name in ("backoff", "max_backoff", "max_retry_after"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"RetryPolicy needs {name} >= 0 seconds, got {value!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"RetryPolicy needs jitter in [0, 1], got {self.jitter!r}")
        retry_on = self.retry_on
        if isinstance(retry_on, type):
            retry_on = (retry_on,)
            object.__setattr__(self, "retry_on", retry_on)
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in retry_on):
            raise TypeError(
                f"RetryPolicy needs retry_on to be exception classes, got {self.retry_on!r}"
            )

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry ``attempt`` (1 for the first retry)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        cap = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return float(cap * (1 - self.jitter * random.random()))

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Whether failure number ``attempt`` (1-based) is worth another try."""
        return attempt <= self.retries and isinstance(exc, self.retry_on)

    def wait_after(self, exc: Exception, attempt: int) -> float | None:
        """Seconds to wait before trying again after failure number ``attempt`` (1-based), or
        None when ``exc`` is final (then, after more than one attempt, noted on ``exc``)."""
        if self.should_retry(exc, attempt):
            return self.delay(attempt, getattr(exc, "retry_after", None))
        if attempt > 1:
            exc.add_note(f"aiopipe: failed after {attempt} attempts")
        return None

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """``await fn()``, retried under this policy; the last failure notes the attempts."""
        attempt = 0
        while True:
            try:
                return await fn()
            except Exception as exc:
                attempt += 1
                wait = self.wait_after(exc, attempt)
                if wait is None:
                    raise
            await anyio.sleep(wait)
