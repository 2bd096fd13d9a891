"""Exact resume of custom ``.then()`` stages: the ``state_dict`` / ``load_state_dict`` opt-in.

A stage object whose class defines both methods is resumable (checked with ``check_resume`` on
both backends, through ``iter_sync`` once, and chained); a plain function stays unresumable and
``state_dict()`` says how to opt in; a stateful stage with ``workers > 1`` is refused at build time.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import numpy as np
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

import aiopipe as ap
from aiopipe.testing import check_resume

pytestmark = pytest.mark.anyio

TIMEOUT_S = 60
N = 1000
# Cuts inside the first chunks, at chunk and batch edges, and at the very end.
CUTS = [0, 1, 2, 3, 7, 64, 127, 128, 255, 256, 257, 499, 500, 998, 999, 1000]


class RunningSum:
    """Emits the running total of its input: its whole state is that total."""

    def __init__(self) -> None:
        self.total = 0

    async def __call__(
        self, inbox: MemoryObjectReceiveStream[int], outbox: MemoryObjectSendStream[int]
    ) -> None:
        async with inbox, outbox:
            async for x in inbox:
                self.total += x  # before the send whose state it is
                await outbox.send(self.total)

    def state_dict(self) -> dict[str, Any]:
        return {"total": self.total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.total = int(state["total"])


class Pairs:
    """Two inputs make one output ``(index, a, b)``; an odd last one goes out as ``(index, a,
    -1)``. Between sends it holds half a pair, which a resume re-reads from upstream."""

    def __init__(self) -> None:
        self.pairs = 0

    async def __call__(
        self, inbox: MemoryObjectReceiveStream[int], outbox: MemoryObjectSendStream[Any]
    ) -> None:
        async with inbox, outbox:
            held: list[int] = []
            async for x in inbox:
                held.append(x)
                if len(held) == 2:
                    self.pairs += 1
                    await outbox.send((self.pairs - 1, *held))
                    held = []
            if held:
                self.pairs += 1
                await outbox.send((self.pairs - 1, held[0], -1))

    def state_dict(self) -> dict[str, Any]:
        return {"pairs": self.pairs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pairs = int(state["pairs"])


class Deltas:
    """``x - previous`` for each input after the first, sent with ``send_nowait`` when there is
    room: the previous input is received but not yet used, so it is part of the state, and the
    list it lives in changes after the send (the saved state must not)."""

    def __init__(self) -> None:
        self.prev: list[int] = []

    async def __call__(
        self, inbox: MemoryObjectReceiveStream[int], outbox: MemoryObjectSendStream[int]
    ) -> None:
        async with inbox, outbox:
            while True:
                try:
                    x = await inbox.receive()
                except anyio.EndOfStream:
                    return
                if self.prev:
                    try:
                        outbox.send_nowait(x - self.prev[0])
                    except anyio.WouldBlock:
                        await outbox.send(x - self.prev[0])
                self.prev[:] = [x]

    def state_dict(self) -> dict[str, Any]:
        return {"prev": self.prev}  # the live list: aiopipe copies it as it is sent

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prev = list(state["prev"])


class Repeats:
    """``x % 4`` outputs ``(serial, x)`` for each input ``x``, the serial counted after each send:
    a resume inside such a burst restarts it and drops what was delivered."""

    def __init__(self) -> None:
        self.serial = 0

    async def __call__(
        self, inbox: MemoryObjectReceiveStream[int], outbox: MemoryObjectSendStream[Any]
    ) -> None:
        async with inbox, outbox:
            async for x in inbox:
                for _ in range(x % 4):
                    await outbox.send((self.serial, x))
                    self.serial += 1

    def state_dict(self) -> dict[str, Any]:
        return {"serial": self.serial}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.serial = int(state["serial"])


def squares(n: int = N) -> ap.Pipeline[int]:
    return ap.from_iterable([x * x for x in range(n)])


async def test_running_sum_resumes_exactly(anyio_backend: str) -> None:
    expected = list(np.cumsum([x * x for x in range(N)]))
    with anyio.fail_after(TIMEOUT_S):
        assert await squares().then(RunningSum()).collect() == expected
        report = await check_resume(lambda: squares().then(RunningSum()), CUTS)
    assert report.total == N
    assert report.largest_state < 1000  # a total and a count, whatever the position


async def test_pairs_resume_exactly(anyio_backend: str) -> None:
    def make() -> ap.Pipeline[Any]:
        return squares(N + 1).then(Pairs(), name="pairs").batch(7)

    with anyio.fail_after(TIMEOUT_S):
        report = await check_resume(make)
        await check_resume(make, [5, 20, 50, 71, 72], chain=True)
    assert report.total == (N // 2 + 1 + 6) // 7


async def test_pairs_resume_through_iter_sync() -> None:
    with anyio.fail_after(TIMEOUT_S):
        await check_resume(
            lambda: squares(N + 1).then(Pairs()), [0, 1, 3, 129, 500, 501], via="sync"
        )


async def test_held_input_and_send_nowait_resume_exactly(anyio_backend: str) -> None:
    # The stage after the custom one holds outputs of its own (a shuffle buffer), so its
    # state points back into the middle of the custom stage's chunks.
    def make() -> ap.Pipeline[Any]:
        return squares().then(Deltas()).shuffle(50, seed=3).map(lambda d: d + 1)

    with anyio.fail_after(TIMEOUT_S):
        await check_resume(make, CUTS[:-1])


async def test_a_resume_inside_a_burst_of_outputs_is_exact(anyio_backend: str) -> None:
    def make() -> ap.Pipeline[Any]:
        return ap.from_iterable(range(N)).then(Repeats()).batch(5)

    with anyio.fail_after(TIMEOUT_S):
        report = await check_resume(make)
        await check_resume(lambda: ap.from_iterable(range(N)).then(Repeats()), [1, 2, 4, 5, 700])
    assert report.total == (sum(x % 4 for x in range(N)) + 4) // 5


async def test_state_names_the_stage_and_its_count() -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with squares().then(RunningSum(), name="sum").open() as run:
            for _ in range(10):
                await run.receive()
            state = json.loads(json.dumps(run.state_dict()))
    assert state["stages"][1] == "sum"
    assert state["params"][1] == {"name": "sum", "class": "RunningSum"}
    # Where the stage last asked for input, and how many outputs it sent since (0 or 1 here).
    received, skip = state["at"][1]["received"], state["at"][1].get("skip", 0)
    assert received + skip == 10
    assert state["at"][1]["custom"] == {"total": sum(x * x for x in range(received))}


async def test_a_fresh_run_starts_from_the_built_state() -> None:
    pipe = squares(10).then(RunningSum())
    with anyio.fail_after(TIMEOUT_S):
        first = await pipe.collect()
        assert await pipe.collect() == first  # the object's total from run 1 is not carried


async def test_plain_function_stage_is_unresumable_with_how_to() -> None:
    async def doubler(
        inbox: MemoryObjectReceiveStream[int], outbox: MemoryObjectSendStream[int]
    ) -> None:
        async with inbox, outbox:
            async for x in inbox:
                await outbox.send(2 * x)

    with anyio.fail_after(TIMEOUT_S):
        async with squares().then(doubler).open() as run:
            await run.receive()
            with pytest.raises(TypeError, match=r"stage 'then\(doubler\)' cannot save") as err:
                run.state_dict()
    assert "state_dict() -> dict" in str(err.value)
    assert "load_state_dict(state)" in str(err.value)


def test_stateful_stage_with_workers_is_refused_at_build() -> None:
    with pytest.raises(ValueError, match=r"then\(workers=2\).*'then\(RunningSum\)'.*workers=1"):
        squares().then(RunningSum(), workers=2)
    squares().then(RunningSum(), workers=1)  # fine


def test_half_a_protocol_is_refused_at_build() -> None:
    class OnlySave(RunningSum):
        load_state_dict = None  # type: ignore[assignment]

    with pytest.raises(TypeError, match=r"only one of state_dict\(\) and load_state_dict"):
        squares().then(OnlySave())


def test_a_state_that_is_not_json_is_refused_at_build() -> None:
    class Sets(RunningSum):
        def state_dict(self) -> dict[str, Any]:
            return {"seen": set()}

    with pytest.raises(TypeError, match=r"stage 'then\(Sets\)'.*JSON"):
        squares().then(Sets())


async def test_a_state_of_another_class_is_refused() -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with squares().then(RunningSum(), name="x").open() as run:
            await run.receive()
            state = run.state_dict()
    with pytest.raises(ValueError, match=r"stage 'x'.*class='RunningSum' in the state"):
        squares().then(Pairs(), name="x").open(state=state)


async def test_a_second_run_at_once_is_refused() -> None:
    pipe = squares().then(RunningSum())
    with anyio.fail_after(TIMEOUT_S):
        async with pipe.open() as run:
            await run.receive()
            with pytest.raises(RuntimeError, match=r"in use by another run"):
                async with pipe.open() as second:
                    await second.receive()


async def test_a_state_that_stops_being_json_fails_the_run_naming_the_stage() -> None:
    class Drifts(RunningSum):
        def state_dict(self) -> dict[str, Any]:
            return {"total": self.total if self.total < 100 else {self.total}}

    with anyio.fail_after(TIMEOUT_S):
        with pytest.raises(TypeError, match=r"stage 'drifts': state_dict\(\) must return a JSON"):
            await squares().then(Drifts(), name="drifts").collect()
