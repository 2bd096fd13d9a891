"""A scenario: a random pipeline, its faults and its consumer, drawn from ``(seed, index)``."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from ._faults import EXC_KINDS, Fault

# Stages that keep element order; the others make the output a multiset.
ASYNC_EXC_ONLY = {"StopAsyncIteration"}


@dataclass
class FileSpec:
    """One input file: its reader's parameters, the values it encodes, how it is damaged."""

    reader: dict[str, Any]
    values: list[int]
    crlf: bool = False
    final_newline: bool = True


@dataclass
class Scenario:
    seed: int
    index: int
    backend: str
    source: dict[str, Any]
    stages: list[dict[str, Any]]
    consumer: dict[str, Any]
    faults: list[Fault] = field(default_factory=list)
    files: list[FileSpec] = field(default_factory=list)

    @property
    def uses_process(self) -> bool:
        return any(s.get("executor") == "process" for s in self.stages)

    @property
    def timeout(self) -> float:
        return 30.0 if self.uses_process else 8.0

    def stage_name(self, pos: int) -> str:
        return str(self.source["name"] if pos == 0 else self.stages[pos - 1]["name"])

    def describe(self) -> str:
        src = dict(self.source)
        if "values" in src:
            src["values"] = f"<{len(src['values'])}>"
        parts = [f"{self.backend}", f"source={src}"]
        if self.files:
            parts.append(f"files={[(len(f.values)) for f in self.files]} {self.files[0].reader}")
        parts += [f"{i + 1}:{_stage_text(s)}" for i, s in enumerate(self.stages)]
        parts.append(f"consumer={self.consumer}")
        parts += [f"fault[{f.describe()}]" for f in self.faults]
        return " ".join(parts)


def _stage_text(s: dict[str, Any]) -> str:
    args = ",".join(f"{k}={v}" for k, v in s.items() if k not in ("op", "name"))
    return f"{s['op']}({args})"


# -- the generator ---------------------------------------------------------------------------


def make_scenario(seed: int, index: int) -> Scenario:
    """The scenario ``index`` of the soak with ``seed``: the same pair always gives the same one."""
    from ._reference import stage_inputs  # the model picks which elements the faults hit

    rng = random.Random(f"{seed}:{index}")
    backend = rng.choice(["asyncio", "trio"])
    source, files = _draw_source(rng)
    stages = _draw_stages(rng, source)
    consumer = _draw_consumer(rng, source, stages)
    scn = Scenario(seed, index, backend, source, stages, consumer, files=files)
    if consumer["action"] != "pause":
        scn.faults = _draw_faults(rng, scn, stage_inputs(scn))
    return scn


def _draw_size(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.05:
        return 0
    if r < 0.3:
        return rng.randint(1, 10)
    if r < 0.8:
        return rng.randint(10, 300)
    return rng.randint(300, 3000)


def _draw_source(rng: random.Random) -> tuple[dict[str, Any], list[FileSpec]]:
    kind = rng.choices(
        ["list", "iter", "aiter", "arrays1", "arrays2", "arrays_dict", "files"],
        [12, 18, 12, 10, 5, 3, 25],
    )[0]
    if kind == "files":
        reader = _draw_reader(rng)
        files = [
            FileSpec(
                reader,
                [rng.randint(0, 99999) for _ in range(rng.choice([0, 1, 3, 10, 40, 200]))],
                crlf=rng.random() < 0.3,
                final_newline=rng.random() < 0.8,
            )
            for _ in range(rng.randint(1, 6))
        ]
        if reader["kind"] == "WholeFile":
            for f in files:
                f.values = f.values[:1] or [rng.randint(0, 99)]
        return {"kind": "files", "name": "from_files"}, files
    n = _draw_size(rng)
    values = list(range(n))
    name = "from_arrays" if kind.startswith("arrays") else "from_iterable"
    return {"kind": kind, "name": name, "values": values}, []


def _draw_reader(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["TextLines", "WholeFile", "FixedLengthRecords", "TFRecords"])
    if kind == "TextLines":
        return {
            "kind": kind,
            "encoding": rng.choice(["utf-8", "utf-8", "latin-1", None]),
            "skip_header_lines": rng.choice([0, 0, 1]),
        }
    if kind == "FixedLengthRecords":
        record = rng.choice([4, 8])
        return {
            "kind": kind,
            "record_bytes": record,
            "header_bytes": rng.choice([0, 0, 3]),
            "footer_bytes": rng.choice([0, 0, 2]),
            "hop_bytes": rng.choice([0, 0, 0, 2, record + 2]),
        }
    if kind == "TFRecords":
        return {
            "kind": kind,
            "compression": rng.choice([None, None, "GZIP", "ZLIB"]),
            "verify": rng.random() < 0.8,
        }
    return {"kind": kind}


def _maybe_buffer(rng: random.Random, stage: dict[str, Any]) -> dict[str, Any]:
    if rng.random() < 0.25:
        stage["buffer"] = rng.choice([1, 2, 7, 64])
    return stage


def _draw_stages(rng: random.Random, source: dict[str, Any]) -> list[dict[str, Any]]:
    stages: list[dict[str, Any]] = []
    batched = False  # elements are batches
    exact = True  # element order is still known
    procs = 0
    if source["kind"] == "files":
        parallel = rng.choice([1, 1, 2, 3, 4])
        stages.append(_maybe_buffer(rng, {"op": "read", "parallel": parallel}))
        exact = parallel == 1
    for _ in range(rng.randint(0 if stages else 1, 5)):
        ops = ["map", "map", "filter", "flat_map", "shuffle", "prefetch", "take", "skip"]
        ops += ["shard", "then"] + (["unbatch"] * 3 if batched else ["batch"])
        if batched and not exact:
            ops = [o for o in ops if o not in ("map", "filter", "flat_map")]
        op = rng.choice(ops)
        st: dict[str, Any] = {"op": op}
        if op == "map":
            executor = rng.choices([None, "thread", "process"], [70, 26, 4 if procs == 0 else 0])[0]
            procs += executor == "process"
            st.update(
                fn=rng.choice(["affine", "affine", "ident"]),
                is_async=executor is None and rng.random() < 0.4,
                workers=rng.randint(1, 4),
                ordered=rng.random() < 0.7,
                executor=executor,
            )
            exact = exact and st["ordered"]
        elif op == "filter":
            st.update(modulus=rng.choice([2, 3, 5]), is_async=rng.random() < 0.4)
        elif op == "flat_map":
            st.update(form=rng.choice(["list", "gen", "agen"]))
            batched = False
        elif op == "shuffle":
            size = rng.choice([1, 2, 16, 100, 5000])
            st.update(buffer_size=size, seed=rng.randint(0, 9))
            if rng.random() < 0.3:
                st["min_after_dequeue"] = rng.randrange(size)
            exact = False
        elif op == "prefetch":
            st.update(n=rng.choice([1, 2, 64]))
        elif op == "take":
            st.update(n=rng.choice([0, 1, 5, 50, 500]))
        elif op == "skip":
            st.update(n=rng.choice([0, 1, 5, 50]))
        elif op == "shard":
            num = rng.randint(1, 4)
            st.update(num_shards=num, index=rng.randrange(num))
        elif op == "then":
            st.update(workers=rng.choice([1, 1, 2]))
            exact = exact and st["workers"] == 1
        elif op == "batch":
            st.update(batch_size=rng.choice([1, 3, 32, 256]), drop_remainder=rng.random() < 0.3)
            batched = True
        elif op == "unbatch":
            batched = False
        if op in ("map", "filter", "flat_map", "then", "shuffle", "batch"):
            _maybe_buffer(rng, st)
        if (op == "map" and st["fn"] == "affine") or op == "flat_map":
            batched = False
        stages.append(st)
    for pos, st in enumerate(stages, 1):
        st["name"] = f"s{pos}_{st['op']}"
    return stages


def _draw_consumer(
    rng: random.Random, source: dict[str, Any], stages: list[dict[str, Any]]
) -> dict[str, Any]:
    mode = rng.choices(["async_for", "collect", "iter_sync"], [50, 25, 25])[0]
    actions = ["none", "break", "raise"] if mode != "collect" else ["none"]
    weights = [60, 20, 12] if mode != "collect" else [1]
    if mode == "async_for":
        actions += ["cancel", "pause"]
        weights += [10, 15]
    action = rng.choices(actions, weights)[0]
    if action == "pause":
        if source["kind"] not in ("list", "iter") or any(
            s.get("executor") == "process" for s in stages
        ):
            action = "break"
        else:
            # Big enough that an unbounded read-ahead shows: the source holds 20,000 elements,
            # counted as they are pulled.
            source["kind"] = "iter"
            source["values"] = list(range(20_000))
    return {"mode": mode, "action": action, "at": rng.choice([0, 1, 3, 20, 200])}


def _draw_faults(rng: random.Random, scn: Scenario, inputs: dict[int, list[Any]]) -> list[Fault]:
    count = rng.choices([0, 1, 2], [40, 45, 15])[0]
    faults: list[Fault] = []
    for k in range(count):
        fault = _draw_fault(rng, scn, inputs, token=f"{scn.seed}-{scn.index}-{k}", second=k > 0)
        if fault is not None and all(f.stage != fault.stage for f in faults):
            faults.append(fault)
    return faults


def _faultable(scn: Scenario) -> list[int]:
    out = [0] if scn.source["kind"] in ("iter", "aiter") else []
    for pos, st in enumerate(scn.stages, 1):
        if st["op"] in ("map", "filter", "flat_map", "then") or (
            st["op"] == "read" and any(f.values for f in scn.files)
        ):
            out.append(pos)
    return out


def _draw_fault(
    rng: random.Random, scn: Scenario, inputs: dict[int, list[Any]], token: str, second: bool
) -> Fault | None:
    """One fault. A second fault often waits for the first to have raised, at an early element:
    two stages failing together, the second while the run is being torn down."""
    from ._values import canonical

    candidates = _faultable(scn)
    if not candidates:
        return None
    pos = rng.choice(candidates)
    st = scn.stages[pos - 1] if pos else {"op": "source"}
    if st["op"] == "read":
        return _draw_file_fault(rng, scn, pos, token)
    seen = inputs.get(pos, [])
    if not seen:
        return None
    is_async = (
        bool(st.get("is_async"))
        or st["op"] == "then"
        or (scn.source["kind"] == "aiter" and pos == 0)
    )
    if st["op"] == "flat_map" and st["form"] == "agen":
        is_async = True
    kinds = [k for k in EXC_KINDS if is_async or k not in ASYNC_EXC_ONLY]
    if pos == 0 and scn.source["kind"] == "iter":
        kinds.remove("StopIteration")  # from an iterator's __next__ it *is* the end of input
    exc_kind = rng.choices(kinds, [EXC_KINDS[k] for k in kinds])[0]
    weights = [40, 10, 10, 40] if second else [70, 10, 10, 10]
    action = rng.choices(["raise", "hang", "hang_raise", "wait_raise"], weights)[0]
    if st.get("executor") == "process" and action == "wait_raise":
        action = "raise"  # a worker process cannot see the other fault
    early = action == "wait_raise" and rng.random() < 0.7
    trigger = canonical(seen[rng.randrange(max(1, len(seen) // 10) if early else len(seen))])
    delay = rng.choice([0.02, 0.05, 0.2]) if action != "raise" else 0.0
    after = rng.randint(0, 2) if st["op"] == "flat_map" and st["form"] != "list" else 0
    return Fault(pos, trigger, action, exc_kind, token, delay, after)


def _draw_file_fault(rng: random.Random, scn: Scenario, pos: int, token: str) -> Fault | None:
    reader = scn.files[0].reader
    candidates = [i for i, f in enumerate(scn.files) if f.values]
    i = rng.choice(candidates)
    n = len(scn.files[i].values)
    kinds = ["corrupt_missing"]
    if reader["kind"] == "TextLines" and reader["encoding"] == "utf-8":
        kinds.append("corrupt_text")
    if reader["kind"] == "TFRecords":
        kinds.append("corrupt_trunc")
        if reader["compression"] is None and reader["verify"]:
            kinds.append("corrupt_crc")
    if reader["kind"] == "FixedLengthRecords" and not reader["hop_bytes"]:
        kinds.append("corrupt_fixed")
    # A missing file fits every reader: keep it from crowding out the format's own damage.
    action = rng.choices(kinds, [1] + [3] * (len(kinds) - 1))[0]
    exc_kind = "FileNotFoundError" if action == "corrupt_missing" else "CorruptRecordError"
    return Fault(pos, i, action, exc_kind, token, after=rng.randrange(n))
