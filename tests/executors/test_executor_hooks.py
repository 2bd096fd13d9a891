"""What map promises any executor object (no Ray needed): fixed chunks, lost calls named."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import aiopipe as ap

pytestmark = pytest.mark.anyio


class Recording:
    """Runs calls inline and records how many elements each one carried."""

    def __init__(self, chunk: int | None = None, lose_at: int | None = None) -> None:
        self.chunk = chunk
        self.lose_at = lose_at
        self.sizes: list[int] = []

    async def submit(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        items = args[1]
        self.sizes.append(len(items))
        if self.lose_at is not None and self.lose_at in items:
            raise ConnectionError("the worker went away")
        await anyio.lowlevel.checkpoint()
        return fn(*args)


async def test_an_executor_chunk_fixes_the_slice_size() -> None:
    ex = Recording(chunk=7)
    with anyio.fail_after(10):
        out = await ap.from_iterable(range(100)).map(str, workers=2, executor=ex).collect()
    assert out == [str(x) for x in range(100)]
    assert max(ex.sizes) == 7
    assert sum(ex.sizes) == 100


async def test_a_call_the_executor_lost_names_its_first_element() -> None:
    ex = Recording(chunk=5, lose_at=23)
    with anyio.fail_after(10), pytest.raises(ConnectionError) as info:
        await ap.from_iterable(range(100)).map(str, workers=2, executor=ex).collect()
    (note,) = info.value.__notes__
    first = int(note.removeprefix("aiopipe: raised in stage 'map(str)' on element "))
    assert first <= 23 < first + 5  # the first element of the call that held element 23


def test_missing_ray_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees when it is absent
    with pytest.raises(ImportError, match=r"pip install 'aiopipe\[ray\]'"):
        ap.executors.RayExecutor()
    with pytest.raises(ImportError, match=r"pip install 'aiopipe\[ray\]'"):
        ap.executors.RayActorExecutor(dict, num_actors=1)


def test_ray_is_never_started_from_a_worker_thread() -> None:
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("Ray is already initialised in this process")
    seen: list[BaseException] = []

    def make() -> None:
        try:
            ap.executors.RayExecutor()
        except RuntimeError as exc:
            seen.append(exc)

    worker = threading.Thread(target=make)
    worker.start()
    worker.join(timeout=30)
    assert len(seen) == 1
    assert "must be created in the main thread" in str(seen[0])
    assert not ray.is_initialized()
