"""``open(progress=True)``: a tqdm bar on terminals, silence elsewhere, no noise on stop."""

from __future__ import annotations

import io
import sys

import anyio
import pytest

import aiopipe as ap
from aiopipe._core.observe._progress import ENV, progress_enabled


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def slowish(x: int) -> int:
    await anyio.sleep(0.001)
    return x


async def consume(n: int = 300, *, stop_after: int | None = None) -> int:
    seen = 0
    with anyio.fail_after(20):
        async with ap.from_iterable(range(n)).map(slowish).batch(10).open(progress=True) as run:
            async for _ in run:
                seen += 1
                if seen == stop_after:
                    break
    return seen


@pytest.mark.anyio
async def test_silent_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert not sys.stderr.isatty()
    assert await consume() == 30
    assert capsys.readouterr() == ("", "")


@pytest.mark.anyio
async def test_forced_bar_counts_what_the_consumer_got(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "always")
    assert await consume() == 30
    err = capsys.readouterr().err
    assert "aiopipe: 100%" in err  # the length is known: a total, a percentage, an ETA
    assert "30/30" in err
    assert "Traceback" not in err


@pytest.mark.anyio
async def test_bar_of_unknown_length_counts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "always")
    with anyio.fail_after(20):
        async with ap.from_iterable(range(300)).filter(bool).open(progress=True) as run:
            assert len([x async for x in run]) == 299
    err = capsys.readouterr().err
    assert "aiopipe: 299 items" in err
    assert "%" not in err


@pytest.mark.anyio
async def test_stopping_early_closes_the_bar_quietly(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "always")
    assert await consume(10_000, stop_after=3) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err.rstrip().endswith("]")  # the bar's last line, nothing after it
    assert "Traceback" not in err
    assert "Error" not in err


@pytest.mark.anyio
async def test_missing_tqdm_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # makes the import fail
    with (
        anyio.fail_after(5),
        pytest.raises(ImportError, match=r"pip install 'aiopipe\[progress\]'"),
    ):
        async with ap.from_iterable(range(3)).open(progress=True):
            pass


@pytest.mark.parametrize(
    ("env", "tty", "expected"),
    [
        (None, True, True),
        (None, False, False),
        ("always", False, True),
        ("never", True, False),
        ("auto", True, True),
    ],
)
def test_when_the_bar_is_drawn(
    env: str | None, tty: bool, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if env is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, env)
    stream = FakeTerminal() if tty else io.StringIO()
    assert progress_enabled(stream) is expected
