"""``read`` resumes exactly: one lane, tf.data's cycle order, and completion order with replay."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import aiopipe as ap
from aiopipe.testing import check_resume

pytestmark = pytest.mark.anyio

# Records per file: different lengths, empty files among them (first, middle and last).
LENGTHS = [0, 5, 40, 3, 0, 17, 1, 60, 8, 0, 25, 2]
CUTS = [0, 1, 7, 30, 64, 100, 150, 160, 161]  # 161 records in all


def _record(f: int, i: int) -> bytes:
    return f"{f:02d}:{i:03d}".encode()


def tfrecord_files(root: Path, lengths: list[int] = LENGTHS) -> list[str]:
    paths = []
    for f, n in enumerate(lengths):
        p = root / f"part-{f:02d}.tfrecord"
        ap.tfrecord.write(p, [_record(f, i) for i in range(n)])
        paths.append(str(p))
    return paths


def text_files(root: Path, lengths: list[int] = LENGTHS) -> list[str]:
    paths = []
    for f, n in enumerate(lengths):
        p = root / f"part-{f:02d}.txt"
        p.write_bytes(b"".join(_record(f, i) + b"\n" for i in range(n)))
        paths.append(str(p))
    return paths


def fixed_files(root: Path, lengths: list[int] = LENGTHS) -> list[str]:
    paths = []
    for f, n in enumerate(lengths):
        p = root / f"part-{f:02d}.bin"
        p.write_bytes(b"".join(_record(f, i) for i in range(n)))
        paths.append(str(p))
    return paths


async def lines(path: str) -> AsyncIterator[str]:
    """A plain async generator function as a reader (not a BlockingReader)."""
    text = await anyio.Path(path).read_text()  # one thread hop per file, not per line
    for line in text.splitlines():
        await anyio.lowlevel.checkpoint()  # a real await between records
        yield line


READERS: dict[str, tuple[Callable[..., list[str]], Callable[[], Any]]] = {
    "tfrecord": (tfrecord_files, ap.readers.TFRecords),
    "text": (text_files, ap.readers.TextLines),
    "fixed": (fixed_files, lambda: ap.readers.FixedLengthRecords(6)),
    "async": (text_files, lambda: lines),
}


def reading(paths: list[str], kind: str, **read: Any) -> Callable[[], ap.Pipeline[Any]]:
    reader = READERS[kind][1]
    return lambda: ap.from_files(paths).read(reader(), **read)


async def resume(make: Callable[[], ap.Pipeline[Any]], **kw: Any) -> int:
    with anyio.fail_after(60):
        report = await check_resume(make, **kw)
    assert report.total > 0
    return report.largest_state


@pytest.mark.parametrize("kind", ["tfrecord", "fixed", "async"])
async def test_one_lane_resumes_in_order(tmp_path: Path, kind: str) -> None:
    paths = READERS[kind][0](tmp_path)
    await resume(reading(paths, kind), cuts=CUTS)


@pytest.mark.parametrize("kind", ["tfrecord", "async"])
async def test_deterministic_cycle_resumes_in_order(tmp_path: Path, kind: str) -> None:
    paths = READERS[kind][0](tmp_path)
    await resume(reading(paths, kind, parallel=4, deterministic=True), cuts=CUTS)


@pytest.mark.parametrize("kind", ["tfrecord", "fixed", "async"])
async def test_parallel_lanes_resume_every_record_once(tmp_path: Path, kind: str) -> None:
    paths = READERS[kind][0](tmp_path)
    await resume(reading(paths, kind, parallel=4), cuts=CUTS, ordered=False)


@pytest.mark.parametrize("deterministic", [True, False])
async def test_parallel_read_then_shuffle_and_batch(tmp_path: Path, deterministic: bool) -> None:
    paths = tfrecord_files(tmp_path)

    def make() -> ap.Pipeline[Any]:
        pipe = ap.from_files(paths).read(
            ap.readers.TFRecords(), parallel=4, deterministic=deterministic
        )
        return pipe.shuffle(30, seed=1).batch(8)

    if deterministic:
        await resume(make, cuts=[0, 1, 2, 5, 10, 19, 20, 21])
    else:
        # Completion order varies between runs, so batches do too: compare the records.
        await resume(lambda: make().unbatch(), cuts=CUTS, ordered=False)


async def test_parallel_read_then_batch_resumes_exactly_what_was_not_delivered(
    tmp_path: Path,
) -> None:
    paths = text_files(tmp_path)

    def make() -> ap.Pipeline[Any]:
        return ap.from_files(paths).read(ap.readers.TextLines(), parallel=4).batch(8).unbatch()

    await resume(make, cuts=CUTS, ordered=False)


@pytest.mark.parametrize("parallel", [1, 4])
async def test_keys_resume(tmp_path: Path, parallel: int) -> None:
    paths = tfrecord_files(tmp_path)
    make = reading(paths, "tfrecord", parallel=parallel, keys=True, deterministic=True)
    await resume(make, cuts=CUTS)


async def test_async_reader_keys_resume_without_determinism(tmp_path: Path) -> None:
    paths = text_files(tmp_path)
    await resume(reading(paths, "async", parallel=3, keys=True), cuts=CUTS, ordered=False)


@pytest.mark.parametrize("deterministic", [True, False])
async def test_shuffled_epochs_resume(tmp_path: Path, deterministic: bool) -> None:
    paths = tfrecord_files(tmp_path)

    def make() -> ap.Pipeline[Any]:
        files = ap.from_files(paths, epochs=2, shuffle=True, seed=7)
        return files.read(ap.readers.TFRecords(), parallel=4, deterministic=deterministic)

    cuts = [0, 3, 100, 161, 162, 200, 321, 322]
    await resume(make, cuts=cuts, ordered=deterministic)


async def test_resume_through_iter_sync(tmp_path: Path) -> None:
    paths = text_files(tmp_path)

    def make() -> ap.Pipeline[Any]:
        pipe = ap.from_files(paths).read(ap.readers.TextLines(), parallel=4)
        return pipe.shuffle(20, seed=3).batch(4).unbatch()

    await resume(make, cuts=[0, 5, 64, 150], ordered=False, via="sync")


@pytest.mark.parametrize("deterministic", [True, False])
async def test_resume_a_resumed_run(tmp_path: Path, deterministic: bool) -> None:
    paths = tfrecord_files(tmp_path)

    def make() -> ap.Pipeline[Any]:
        pipe = ap.from_files(paths).read(
            ap.readers.TFRecords(), parallel=4, deterministic=deterministic
        )
        return pipe.shuffle(16, seed=2).batch(4).unbatch()

    await resume(make, cuts=[1, 9, 40, 41, 100, 160], ordered=deterministic, chain=True)


async def test_state_stays_small(tmp_path: Path) -> None:
    paths = text_files(tmp_path, [300] * 20)
    make = reading(paths, "text", parallel=4)
    sizes = []
    for cut in (100, 3000, 5900):
        async with make().open() as run:
            for _ in range(cut):
                await run.receive()
            sizes.append(len(json.dumps(run.state_dict())))
    assert max(sizes) < 2000, sizes


# -- the order ---------------------------------------------------------------------------------


async def test_deterministic_order_is_tf_datas_interleave(tmp_path: Path) -> None:
    # tf.data: Dataset.from_tensor_slices(files).interleave(TFRecordDataset, cycle_length=3,
    # block_length=1). A file that ends frees its slot; the slot takes the next file when the
    # cycle comes back to it, so the next slot gives its record first.
    lengths = [2, 0, 4, 1, 3, 2]
    paths = tfrecord_files(tmp_path, lengths)
    pipe = ap.from_files(paths).read(ap.readers.TFRecords(), parallel=3, deterministic=True)
    with anyio.fail_after(10):
        got = [r.decode() for r in await pipe.collect()]
    assert got == [
        "00:000", "02:000",  # file 1 is empty: slot 1 is freed without a record
        "00:001", "03:000", "02:001",  # slot 1 took file 3
        "02:002",  # files 0 and 3 ended: slots 0 and 1 are freed, slot 2 gives
        "04:000", "05:000", "02:003",  # slots 0 and 1 take files 4 and 5
        "04:001", "05:001",  # file 2 ended
        "04:002",  # file 5 ended; no paths left: empty slots are passed over
    ]  # fmt: skip


async def test_deterministic_order_matches_interleave(tmp_path: Path) -> None:
    paths = tfrecord_files(tmp_path)
    read = ap.from_files(paths).read(ap.readers.TFRecords(), parallel=4, deterministic=True)
    lengths = dict(zip(paths, LENGTHS, strict=True))
    index = {p: f for f, p in enumerate(paths)}

    def records(path: str) -> list[bytes]:
        return [_record(index[path], i) for i in range(lengths[path])]

    inter = ap.from_iterable(paths).interleave(records, cycle_length=4, block_length=1)
    with anyio.fail_after(10):
        assert await read.collect() == await inter.collect()


async def test_deterministic_read_gives_the_same_sequence_every_run(tmp_path: Path) -> None:
    lengths = [37, 0, 1500, 3, 900, 64, 0, 2100, 5, 700, 1, 1200]
    paths = text_files(tmp_path, lengths)
    pipe = ap.from_files(paths).read(ap.readers.TextLines(), parallel=4, deterministic=True)
    with anyio.fail_after(20):
        runs = [await pipe.collect() for _ in range(3)]
    assert len(runs[0]) == sum(lengths)
    assert runs[0] == runs[1] == runs[2]
    assert sorted(runs[0]) == sorted(
        _record(f, i).decode() for f, n in enumerate(lengths) for i in range(n)
    )


# -- refusals ----------------------------------------------------------------------------------


async def _state_after(pipe: ap.Pipeline[Any], n: int) -> dict[str, Any]:
    with anyio.fail_after(10):
        async with pipe.open() as run:
            for _ in range(n):
                await run.receive()
            state: dict[str, Any] = json.loads(json.dumps(run.state_dict()))
    return state


async def test_other_parallel_is_refused(tmp_path: Path) -> None:
    paths = text_files(tmp_path)
    state = await _state_after(ap.from_files(paths).read(ap.readers.TextLines(), parallel=4), 20)
    with pytest.raises(ValueError, match="parallel=4 in the state, 2 now"):
        ap.from_files(paths).read(ap.readers.TextLines(), parallel=2).open(state=state)
    with pytest.raises(ValueError, match="deterministic"):
        ap.from_files(paths).read(ap.readers.TextLines(), parallel=4, deterministic=True).open(
            state=state
        )


async def test_other_file_list_is_refused(tmp_path: Path) -> None:
    paths = text_files(tmp_path)
    state = await _state_after(ap.from_files(paths).read(ap.readers.TextLines()), 20)
    with pytest.raises(ValueError, match="files"):
        ap.from_files(paths[:-1]).read(ap.readers.TextLines()).open(state=state)


@pytest.mark.parametrize("deterministic", [True, False])
async def test_another_path_at_a_saved_index_is_refused(
    tmp_path: Path, deterministic: bool
) -> None:
    paths = text_files(tmp_path)

    def make(names: list[str]) -> ap.Pipeline[Any]:
        return ap.from_iterable(names).read(
            ap.readers.TextLines(), parallel=4, deterministic=deterministic
        )

    state = await _state_after(make(paths), 20)
    read = state["at"][1]
    # A file being read at record 20 (which one depends on the lanes' timing): move it.
    entries = [e for e in read.get("files", read.get("cycle", [])) if e is not None]
    started = [i for i, _, done in entries if done]
    assert started, read
    other = list(paths)
    other[started[0]] += ".moved"
    with pytest.raises(ValueError, match=r"moved"):
        with anyio.fail_after(10):
            async with make(other).open(state=state) as run:
                async for _ in run:
                    pass


def test_deterministic_must_be_a_bool(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"deterministic=\) must be True or False, got 'yes'"):
        ap.from_iterable(["x"]).read(ap.readers.TextLines(), deterministic="yes")  # type: ignore[arg-type]


# -- errors in the cycle order -----------------------------------------------------------------


def _corrupt_pair(root: Path) -> list[str]:
    """A good file of 5 records, one whose last record is corrupt, and a good one of 3."""
    good, bad, more = root / "a.tfrecord", root / "b.tfrecord", root / "c.tfrecord"
    ap.tfrecord.write(good, [_record(0, i) for i in range(5)])
    ap.tfrecord.write(bad, [_record(1, i) for i in range(5)])
    data = bytearray(bad.read_bytes())
    data[-1] ^= 0xFF  # the last record's data CRC
    bad.write_bytes(bytes(data))
    ap.tfrecord.write(more, [_record(2, i) for i in range(3)])
    return [str(good), str(bad), str(more)]


async def test_cycle_raises_after_the_records_before_the_error(tmp_path: Path) -> None:
    paths = _corrupt_pair(tmp_path)
    pipe = ap.from_files(paths).read(ap.readers.TFRecords(), parallel=2, deterministic=True)
    got: list[str] = []
    with anyio.fail_after(10), pytest.raises(ap.CorruptRecordError):
        async with pipe.open() as run:
            async for record in run:
                got.append(record.decode())
    assert got == [f"{f:02d}:{i:03d}" for i in range(4) for f in (0, 1)] + ["00:004"]


async def test_cycle_skips_the_rest_of_a_bad_file(tmp_path: Path) -> None:
    paths = _corrupt_pair(tmp_path)
    pipe = ap.from_files(paths).read(
        ap.readers.TFRecords(), parallel=2, deterministic=True, on_error="skip"
    )
    with anyio.fail_after(10):
        async with pipe.open() as run:
            got = [r.decode() async for r in run]
            assert len(run.errors()) == 1
    before = [f"{f:02d}:{i:03d}" for i in range(4) for f in (0, 1)] + ["00:004"]
    assert got == [*before, "02:000", "02:001", "02:002"]


# -- URLs (streamed on the event loop, not in thread hops) ---------------------------------------


@pytest.fixture(scope="module")
def url_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    from aiopipe.testing import ObjectServer

    root = tmp_path_factory.mktemp("urls")
    objects = {f"/read/{Path(p).name}": Path(p).read_bytes() for p in text_files(root)}
    with ObjectServer(objects) as server:
        yield [server.url + name for name in objects]


@pytest.mark.parametrize(("parallel", "deterministic"), [(1, False), (3, False), (3, True)])
async def test_urls_resume(url_files: list[str], parallel: int, deterministic: bool) -> None:
    def make() -> ap.Pipeline[Any]:
        return ap.from_files(url_files).read(
            ap.readers.TextLines(), parallel=parallel, deterministic=deterministic
        )

    ordered = parallel == 1 or deterministic
    await resume(make, cuts=[0, 3, 64, 120, 161], ordered=ordered)


@pytest.fixture(scope="module")
def one_record_objects() -> Iterator[list[str]]:
    from aiopipe.testing import ObjectServer

    objects = {f"/one/{i:03d}": _record(i, 0) for i in range(60)}
    with ObjectServer(objects) as server:
        server.hold_until = 8  # the lanes' responses come together: their records share chunks
        yield [server.url + name for name in objects]


@pytest.mark.parametrize("then", ["none", "batch", "shuffle"])
async def test_lanes_of_one_record_each_resume(one_record_objects: list[str], then: str) -> None:
    """Records that joined the chunk of another lane's record resume exactly too."""

    def make() -> ap.Pipeline[Any]:
        pipe = ap.from_files(one_record_objects).read(ap.readers.WholeFile(), parallel=8)
        if then == "batch":
            return pipe.batch(7, collate=list)
        return pipe.shuffle(16, seed=3) if then == "shuffle" else pipe

    flatten = (lambda b: b) if then == "batch" else None
    cuts = [0, 1, 4, 8] if then == "batch" else [0, 1, 5, 9, 30, 59]
    await resume(make, cuts=cuts, ordered=False, flatten=flatten)


def test_fixed_length_records_resume_by_seeking(tmp_path: Path) -> None:
    (path,) = fixed_files(tmp_path, [50])
    reader = ap.readers.FixedLengthRecords(6)
    whole = list(reader.iter_records(path, keys=True))
    assert list(reader.iter_records_from(path, 37, keys=True)) == whole[37:]
    assert list(reader.iter_records_from(path, 50)) == []


@pytest.mark.parametrize("kind", ["tfrecord", "async"])
@pytest.mark.parametrize("deterministic", [True, False])
async def test_stopping_early_leaves_nothing_behind(
    tmp_path: Path, kind: str, deterministic: bool
) -> None:
    paths = READERS[kind][0](tmp_path, [3000] * 6)  # files still open when the run stops
    make = reading(paths, kind, parallel=4, deterministic=deterministic)
    with anyio.fail_after(10):
        assert len(await make().take(10).collect()) == 10
        async with make().open() as run:
            async for _ in run:
                break


@pytest.mark.parametrize("deterministic", [True, False])
async def test_long_files_interleaved_by_lanes_resume(tmp_path: Path, deterministic: bool) -> None:
    # Files longer than a hop: lanes' pieces interleave in the stream, files stay open across
    # many chunks, and shuffle holds positions far back in the read's output.
    paths = tfrecord_files(tmp_path, [1500, 0, 2600, 900, 3100, 1])

    def make() -> ap.Pipeline[Any]:
        pipe = ap.from_files(paths).read(
            ap.readers.TFRecords(), parallel=4, deterministic=deterministic
        )
        return pipe.shuffle(300, seed=4).batch(16).unbatch()

    await resume(make, cuts=[0, 700, 4000, 8101], ordered=deterministic)
