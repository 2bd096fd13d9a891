"""http(s):// paths against aiopipe's ObjectServer: concurrency, streaming, faults, cancellation."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

import aiopipe as ap
from aiopipe.remote import RetryPolicy, TransientError
from aiopipe.testing import ObjectServer
from aiopipe.tfrecord._writing import write

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(retries=3, backoff=0.001, max_backoff=0.002)


def _records(n: int = 400) -> list[bytes]:
    return [f"rec-{i:05d}".encode() * (1 + i % 5) for i in range(n)]


@pytest.fixture(scope="module")
def tfrecord(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("http") / "x.tfrecord"
    write(path, _records())
    return path.read_bytes()


async def test_256_requests_in_flight(server: ObjectServer) -> None:
    n = 300
    for i in range(n):
        server.objects[f"/many/{i}"] = f"object {i}".encode()
    # The server answers nothing until 256 requests are outstanding at once: reaching the end
    # proves the read stage had them all in flight (a thread-per-request pool of 40 would hang).
    server.hold_until = 256
    urls = [f"{server.url}/many/{i}" for i in range(n)]
    with anyio.fail_after(30):
        got = await ap.from_files(urls).read(ap.readers.WholeFile(), parallel=256).collect()
    assert sorted(got) == sorted(f"object {i}".encode() for i in range(n))
    assert server.max_inflight >= 256


async def test_large_object_streams_in_ranges(server: ObjectServer, tfrecord: bytes) -> None:
    server.objects["/big.tfrecord"] = tfrecord
    reader = ap.readers.TFRecords(storage_options={"range_bytes": 1024, "readahead": 2})
    with anyio.fail_after(30):
        got = await ap.from_files([f"{server.url}/big.tfrecord"]).read(reader).collect()
    assert got == _records()
    starts = [
        int(r.partition("=")[2].partition("-")[0]) for p, r in server.ranges if p == "/big.tfrecord"
    ]
    # The first 1024 bytes come from a plain GET cut short; then each range is asked for once.
    assert sorted(starts) == list(range(1024, len(tfrecord), 1024))
    assert server.requests["/big.tfrecord"] == len(starts) + 1


@pytest.mark.parametrize("fault", ["503", "500", "429", "reset", "drop", "slow"])
async def test_transient_faults_are_retried_exactly_once_per_record(
    server: ObjectServer, tfrecord: bytes, fault: str
) -> None:
    server.objects["/f.tfrecord"] = tfrecord
    server.faults["/f.tfrecord"] = [
        "",
        "",
        fault,
        fault,
        "",
    ]  # the 3rd and 4th ranges fail once each
    opts = {"range_bytes": 2048, "readahead": 1, "retry": FAST, "timeout": 5.0}
    reader = ap.readers.TFRecords(storage_options=opts)
    with anyio.fail_after(30):
        got = await ap.from_files([f"{server.url}/f.tfrecord"]).read(reader).collect()
    assert got == _records()


async def test_timeout_is_retried(server: ObjectServer) -> None:
    server.objects["/t"] = b"payload"
    server.faults["/t"] = ["stall"]
    reader = ap.readers.WholeFile(storage_options={"retry": FAST, "timeout": 0.2})
    with anyio.fail_after(30):
        assert await ap.from_files([f"{server.url}/t"]).read(reader).collect() == [b"payload"]
    assert server.requests["/t"] == 2


async def test_retries_used_up_name_url_and_range(server: ObjectServer) -> None:
    server.objects["/down"] = b"x" * 100
    server.faults["/down"] = ["503"] * 10
    reader = ap.readers.WholeFile(storage_options={"retry": FAST})
    url = f"{server.url}/down"
    with anyio.fail_after(30), pytest.raises(TransientError) as info:
        await ap.from_files([url]).read(reader).collect()
    assert url in str(info.value)
    assert "bytes 0-" in str(info.value)
    assert "503" in str(info.value)
    assert "aiopipe: failed after 4 attempts" in info.value.__notes__
    assert server.requests["/down"] == 4


async def test_refused_connection_is_retried_then_names_url_once() -> None:
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/gone"
    reader = ap.readers.WholeFile(storage_options={"retry": FAST})
    with anyio.fail_after(30), pytest.raises(TransientError) as info:
        await ap.from_files([url]).read(reader).collect()
    message = str(info.value)
    assert message.startswith(f"{url}: bytes 0-")
    assert message.count(url) == 1, message  # the client's own mention of it is not repeated
    assert "cannot connect" in message
    assert "aiopipe: failed after 4 attempts" in info.value.__notes__


async def test_denied_and_missing(server: ObjectServer) -> None:
    server.objects["/secret"] = b"s"
    server.denied.add("/secret")
    with anyio.fail_after(30):
        with pytest.raises(PermissionError, match=f"{server.url}/secret"):
            await ap.from_files([f"{server.url}/secret"]).read(ap.readers.WholeFile()).collect()
        with pytest.raises(FileNotFoundError, match=f"{server.url}/gone"):
            await ap.from_files([f"{server.url}/gone"]).read(ap.readers.TextLines()).collect()
    assert server.requests["/secret"] == 1  # not retried


async def test_corrupt_remote_record_delivers_the_records_before_it(
    server: ObjectServer, tfrecord: bytes
) -> None:
    bad = bytearray(tfrecord)
    bad[len(bad) // 2] ^= 0xFF
    server.objects["/bad.tfrecord"] = bytes(bad)
    got: list[bytes] = []
    reader = ap.readers.TFRecords(storage_options={"range_bytes": 512})
    with anyio.fail_after(30), pytest.raises(ap.CorruptRecordError):
        async with ap.from_files([f"{server.url}/bad.tfrecord"]).read(reader).open() as run:
            async for r in run:
                got.append(r)
    assert got == _records()[: len(got)]
    assert 0 < len(got) < len(_records())


async def test_stuck_read_is_cancelled_cleanly(server: ObjectServer) -> None:
    server.objects["/stuck"] = b"never"
    server.faults["/stuck"] = ["stall"]
    pipe = ap.from_files([f"{server.url}/stuck"]).read(ap.readers.WholeFile())
    with anyio.fail_after(10):
        async with pipe.open() as run:
            # Wait (in a thread) until the request has reached the server.
            assert await anyio.to_thread.run_sync(server.arrived("/stuck").wait, 5)
            with anyio.move_on_after(0):  # leave while the read waits on the network
                await run.receive()
    # open() returned: the stuck request was cancelled, nothing is left running.


async def test_http_globs_are_refused(server: ObjectServer) -> None:
    with pytest.raises(ValueError, match="plain HTTP has no listing"):
        ap.from_files(f"{server.url}/data/*.bin")


def test_retry_policy_delays_and_validation() -> None:
    p = RetryPolicy(retries=3, backoff=0.5, max_backoff=2.0, jitter=0.5)
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (8, 2.0)]:
        for _ in range(50):
            assert cap * 0.5 <= p.delay(attempt) <= cap
    assert p.delay(1, retry_after=7) == 7
    assert p.should_retry(TransientError("x"), 3)
    assert not p.should_retry(TransientError("x"), 4)
    assert not p.should_retry(FileNotFoundError("x"), 1)
    with pytest.raises(ValueError, match="retries >= 0"):
        RetryPolicy(retries=-1)
    with pytest.raises(TypeError, match="exception classes"):
        RetryPolicy(retry_on=(int,))  # type: ignore[arg-type]


async def test_retry_after_header_is_honoured(server: ObjectServer) -> None:
    from aiopipe.remote._store import _retry_after

    assert _retry_after({"retry-after": "3"}) == 3.0
    assert _retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert _retry_after({}) is None


def test_sync_iteration_reads_urls(server: ObjectServer, tmp_path: Path) -> None:
    server.objects["/s.txt"] = b"a\nb\n"
    pipe = ap.from_files([f"{server.url}/s.txt"]).read(ap.readers.TextLines())
    with pipe.iter_sync(backend="trio") as it:
        assert list(it) == ["a", "b"]


def test_public_names() -> None:
    assert set(ap.remote.__all__) == {
        "RemoteError", "RetryPolicy", "TransientError", "expand_url", "is_url",
    }  # fmt: skip
    assert "remote" in ap.__all__
    with pytest.raises(ValueError, match="unknown key"):
        ap.from_files(["https://example.invalid/x"], storage_options={"nope": 1})


async def test_http_query_is_not_a_glob(server: ObjectServer) -> None:
    server.objects["/q"] = b"signed"
    url = f"{server.url}/q?X-Amz-Signature=abc&X-Amz-Expires=60"
    with anyio.fail_after(30):
        assert await ap.from_files([url]).read(ap.readers.WholeFile()).collect() == [b"signed"]


async def test_client_timeout_fails_a_stalled_wait_and_its_timer_stops(
    server: ObjectServer,
) -> None:
    """A server that stops answering fails the request after ``timeout`` (TransientError), on
    both event loops; on asyncio the one watchdog timer per client stops once nothing waits."""
    from aiopipe.remote._http import HttpClient

    server.objects["/s"] = b"payload"
    server.faults["/s"] = ["stall", ""]
    with anyio.fail_after(30):
        async with HttpClient(timeout=0.2) as client:
            with pytest.raises(TransientError, match="timed out"):
                await client.request("GET", f"{server.url}/s")
            assert (await client.request("GET", f"{server.url}/s")).body == b"payload"
            watchdog = client._watchdog
            if watchdog is not None:  # asyncio's plain-http fast path
                assert not watchdog.waiting
                watchdog._sweep()  # the next sweep finds nothing waiting: no timer is left
                assert watchdog._handle is None
