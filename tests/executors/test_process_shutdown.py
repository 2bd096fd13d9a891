"""map(executor="process") leaves no process behind: break, error, outside cancel (also during
start-up), iter_sync, the parent's death; and a script without a main guard gets a clear error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

import aiopipe as ap

psutil = pytest.importorskip("psutil")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _process_fns as fns  # noqa: E402

TIMEOUT_S = 60
HERE = Path(__file__).resolve().parent


def _is_helper(p: Any) -> bool:
    """multiprocessing's fork server and resource tracker: one each per parent, by design."""
    try:
        cmd = " ".join(p.cmdline())
        return p.ppid() == os.getpid() and ("forkserver" in cmd or "resource_tracker" in cmd)
    except psutil.Error:
        return True  # already gone


# Processes that were running before the test (a test server another test module started for
# the whole session, say): not workers of the pipeline under test.
_BEFORE: set[int] = set()


def workers_alive() -> list[int]:
    """Our descendant processes other than multiprocessing's helpers and the processes that
    were there before the test (zombies do not count)."""
    alive = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.pid not in _BEFORE and p.status() != psutil.STATUS_ZOMBIE and not _is_helper(p):
                alive.append(p.pid)
        except psutil.Error:
            pass
    return alive


@pytest.fixture(autouse=True)
def _no_worker_left() -> Any:
    _BEFORE.clear()
    _BEFORE.update(p.pid for p in psutil.Process().children(recursive=True))
    yield
    assert workers_alive() == []  # checked right at exit: stopping joins every worker


def pipe(n: int = 10_000, fn: Any = fns.jittery, workers: int = 2) -> ap.Pipeline[Any]:
    return ap.from_iterable(range(n)).map(fn, workers=workers, executor="process")


@pytest.mark.anyio
async def test_break_stops_and_joins_every_worker() -> None:
    with anyio.fail_after(TIMEOUT_S):
        async with pipe().open() as run:
            async for x in run:
                if x == 50:
                    assert len(workers_alive()) == 2
                    break


@pytest.mark.anyio
async def test_error_stops_and_joins_every_worker() -> None:
    with anyio.fail_after(TIMEOUT_S), pytest.raises(ValueError, match="bad element 5"):
        await pipe(fn=fns.fail_at_5).collect()


@pytest.mark.anyio
async def test_consumer_error_stops_and_joins_every_worker() -> None:
    with anyio.fail_after(TIMEOUT_S), pytest.raises(KeyError):
        async with pipe().open() as run:
            await run.receive()
            raise KeyError("consumer")


@pytest.mark.anyio
@pytest.mark.parametrize("delay", [0.0, 0.001, 0.01, 0.05, 0.2])
async def test_outside_cancel_at_any_point_leaves_nothing(delay: float) -> None:
    # The delays only spread the cancel over start-up and running; nothing is timed.
    with anyio.fail_after(TIMEOUT_S):
        with anyio.move_on_after(delay):
            async with pipe().open() as run:
                async for _ in run:
                    pass


async def wait_for_file(path: Path) -> None:
    """Another process writes it: poll (there is no event to wait on across processes)."""
    for _ in range(TIMEOUT_S * 100):
        if await anyio.Path(path).exists():
            return
        await anyio.sleep(0.01)
    raise AssertionError(f"{path} never appeared")


@pytest.mark.anyio
async def test_outside_cancel_while_workers_load_the_function(tmp_path: Path) -> None:
    marker = tmp_path / "loading"

    async def cancel_once_loading(scope: anyio.CancelScope) -> None:
        await wait_for_file(marker)
        scope.cancel()

    with anyio.fail_after(TIMEOUT_S), anyio.CancelScope() as scope:
        slow = pipe(fn=fns.SlowToLoad(str(marker)), workers=1)
        async with slow.open() as run, anyio.create_task_group() as tg:
            tg.start_soon(cancel_once_loading, scope)
            async for _ in run:
                pass
    assert scope.cancelled_caught
    pid = int(marker.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_iter_sync_break_leaves_nothing() -> None:
    with pipe().iter_sync() as it:
        for x in it:
            if x == 20:
                break


def test_workers_exit_when_the_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(HERE)!r})
            import anyio
            import aiopipe as ap
            import _process_fns as fns

            async def main():
                fn = fns.blocks_with_pid({str(tmp_path)!r})
                await ap.from_iterable(range(10)).map(fn, workers=2, executor="process").collect()

            if __name__ == "__main__":
                anyio.run(main)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while len(list(tmp_path.glob("*.pid"))) < 2:
            assert time.monotonic() < deadline, "the workers never started"
            assert proc.poll() is None
            time.sleep(0.05)
        pids = [int(p.stem) for p in tmp_path.glob("*.pid")]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + TIMEOUT_S
    while any(psutil.pid_exists(p) for p in pids):  # PR_SET_PDEATHSIG, via the fork server
        assert time.monotonic() < deadline, f"workers {pids} outlived their parent"
        time.sleep(0.05)


def test_script_without_main_guard_gets_a_clear_error(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent(
            """
            import anyio
            import aiopipe as ap

            def double(x):
                return 2 * x

            async def main():
                print(await ap.from_iterable(range(5)).map(double, executor="process").collect())

            anyio.run(main)
            """
        )
    )
    res = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=TIMEOUT_S * 2
    )
    assert res.returncode != 0
    assert "WorkerProcessError" in res.stderr
    assert 'Put the code that runs it under `if __name__ == "__main__":`' in res.stderr
    assert "Event loop is closed" not in res.stderr
