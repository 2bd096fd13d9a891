"""A scenario made real: its files on disk (damaged as its faults say) and its aiopipe pipeline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

import aiopipe as ap

from ._faults import (
    AsyncFilterFn,
    AsyncMapFn,
    AsyncSource,
    Fault,
    FilterFn,
    FlatFn,
    MapFn,
    Passthrough,
    Source,
)
from ._scenario import FileSpec, Scenario


def file_layout(spec: FileSpec, scn: Scenario | None = None) -> tuple[list[Any], bytes]:
    """The records a file yields and its (undamaged, uncompressed-framing) bytes."""
    reader = spec.reader
    kind = reader["kind"]
    if kind == "TextLines":
        end = b"\r\n" if spec.crlf else b"\n"
        lines = [b"header"] * reader["skip_header_lines"] + [str(v).encode() for v in spec.values]
        data = end.join(lines)
        if lines and spec.final_newline:
            data += end
        enc = reader["encoding"]
        records = [str(v) if enc else str(v).encode() for v in spec.values]
        return records, data
    if kind == "WholeFile":
        data = str(spec.values[0]).encode()
        return [data], data
    if kind == "FixedLengthRecords":
        size, hop = reader["record_bytes"], reader["hop_bytes"]
        body = b"".join(f"{v % 10**size:0{size}d}".encode() for v in spec.values)
        data = b"h" * reader["header_bytes"] + body + b"f" * reader["footer_bytes"]
        if not spec.values:
            return [], b""
        step = hop or size
        count = (len(body) - size) // step + 1 if len(body) >= size else 0
        start = reader["header_bytes"]
        return [data[start + i * step : start + i * step + size] for i in range(count)], data
    records = [str(v).encode() for v in spec.values]
    return records, b""


def write_files(scn: Scenario, root: Path) -> list[str]:
    paths = []
    for i, spec in enumerate(scn.files):
        path = root / f"f{i}.dat"
        fault = next(
            (f for f in scn.faults if f.action.startswith("corrupt") and f.trigger == i), None
        )
        _write_one(spec, path, fault)
        paths.append(str(path))
    return paths


def _write_one(spec: FileSpec, path: Path, fault: Fault | None) -> None:
    records, data = file_layout(spec)
    kind, action = spec.reader["kind"], fault.action if fault else ""
    if kind == "TFRecords":
        compression = spec.reader["compression"]
        ap.tfrecord.write(str(path), records, compression=compression)
        if action in ("corrupt_crc", "corrupt_trunc"):
            _damage_tfrecord(path, spec, fault)  # type: ignore[arg-type]
        return
    if action == "corrupt_text":
        lines = data.split(b"\n")
        at = spec.reader["skip_header_lines"] + fault.after  # type: ignore[union-attr]
        lines[at] = b"\xff\xfe" + lines[at]
        data = b"\n".join(lines)
    elif action == "corrupt_fixed":
        cut = len(data) - spec.reader["footer_bytes"]
        data = data[:cut] + b"x" + data[cut:]
    path.write_bytes(data)


def _damage_tfrecord(path: Path, spec: FileSpec, fault: Fault) -> None:
    data = path.read_bytes()
    if spec.reader["compression"] is not None:
        path.write_bytes(data[: len(data) // 2])
        return
    # Frame i: 8-byte length, 4-byte length CRC, data, 4-byte data CRC.
    offset = sum(16 + len(str(v)) for v in spec.values[: fault.after])
    data_start = offset + 12
    if fault.action == "corrupt_crc":
        damaged = bytearray(data)
        damaged[data_start] ^= 0x01
        path.write_bytes(bytes(damaged))
    else:
        path.write_bytes(data[: data_start + 1])


def make_reader(reader: dict[str, Any]) -> Any:
    kind = reader["kind"]
    if kind == "TextLines":
        return ap.readers.TextLines(
            skip_header_lines=reader["skip_header_lines"], encoding=reader["encoding"]
        )
    if kind == "WholeFile":
        return ap.readers.WholeFile()
    if kind == "FixedLengthRecords":
        return ap.readers.FixedLengthRecords(
            reader["record_bytes"],
            header_bytes=reader["header_bytes"],
            footer_bytes=reader["footer_bytes"],
            hop_bytes=reader["hop_bytes"],
        )
    return ap.readers.TFRecords(compression=reader["compression"], verify=reader["verify"])


def _fault(scn: Scenario, pos: int) -> Fault | None:
    return next(
        (f for f in scn.faults if f.stage == pos and not f.action.startswith("corrupt")), None
    )


def build(scn: Scenario, root: Path) -> ap.Pipeline[Any]:
    """The scenario's pipeline; corrupt_missing files are deleted after it is built."""
    kind = scn.source["kind"]
    values = scn.source.get("values", [])
    src_fault = _fault(scn, 0)
    if kind == "list":
        pipe = ap.from_iterable(list(values))
    elif kind == "iter":
        pipe = ap.from_iterable(Source(values, "from_iterable", src_fault))
    elif kind == "aiter":
        pipe = ap.from_iterable(AsyncSource(values, "from_iterable", src_fault))
    elif kind == "arrays1":
        pipe = ap.from_arrays(np.arange(len(values)))
    elif kind == "arrays2":
        pipe = ap.from_arrays(np.arange(len(values)), 2 * np.arange(len(values)))
    elif kind == "arrays_dict":
        arr = np.arange(len(values))
        pipe = ap.from_arrays({"x": arr, "y": 2 * arr})
    else:
        pipe = ap.from_files(write_files(scn, root))
    reader = scn.files[0].reader if scn.files else {}
    for pos, st in enumerate(scn.stages, 1):
        pipe = _add_stage(pipe, st, _fault(scn, pos), reader)
    for f in scn.faults:
        if f.action == "corrupt_missing":
            os.unlink(root / f"f{f.trigger}.dat")
    return pipe


def _add_stage(
    pipe: ap.Pipeline[Any], st: dict[str, Any], fault: Fault | None, reader: dict[str, Any]
) -> ap.Pipeline[Any]:
    op, name, buf = st["op"], st["name"], st.get("buffer")
    if op == "read":
        return pipe.read(make_reader(reader), parallel=st["parallel"], name=name, buffer=buf)
    if op == "map":
        fn = (AsyncMapFn if st["is_async"] else MapFn)(st["fn"], name, fault)
        return pipe.map(
            fn,
            workers=st["workers"],
            ordered=st["ordered"],
            executor=st["executor"],
            name=name,
            buffer=buf,
        )
    if op == "filter":
        pred = (AsyncFilterFn if st["is_async"] else FilterFn)(st["modulus"], name, fault)
        return pipe.filter(pred, name=name, buffer=buf)
    if op == "flat_map":
        return pipe.flat_map(FlatFn(st["form"], name, fault), name=name, buffer=buf)
    if op == "then":
        return pipe.then(Passthrough(name, fault), workers=st["workers"], name=name, buffer=buf)
    if op == "shuffle":
        return pipe.shuffle(
            st["buffer_size"],
            min_after_dequeue=st.get("min_after_dequeue"),
            seed=st["seed"],
            name=name,
            buffer=buf,
        )
    if op == "batch":
        return pipe.batch(
            st["batch_size"], drop_remainder=st["drop_remainder"], name=name, buffer=buf
        )
    if op == "unbatch":
        return pipe.unbatch(name=name)
    if op == "prefetch":
        return pipe.prefetch(st["n"])
    if op == "take":
        return pipe.take(st["n"])
    if op == "skip":
        return pipe.skip(st["n"])
    if op == "shard":
        return pipe.shard(st["num_shards"], st["index"])
    raise ValueError(f"unknown stage {op}")
