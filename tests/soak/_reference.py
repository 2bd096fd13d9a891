"""The plain-Python model of a scenario.

``model(scn, demand)`` runs the pipeline as chained generators, lazily, so it knows exactly which
elements a consumer that takes ``demand`` outputs needs: a fault the model meets is *certain* (the
pipeline must raise it), a fault it does not meet but whose element exists is *possible* (read-ahead
may or may not reach it). Faults that only hang are invisible to the model.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ._faults import Fault, compute_filter, compute_flat, compute_map
from ._scenario import Scenario
from ._values import RefBatch, canonical


class ModelRaise(Exception):
    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.describe())
        self.fault = fault


@dataclass
class Outcome:
    outputs: list[Any]  # what the model delivered before it ended or raised
    raised: Fault | None  # the fault the model met, if any


def source_values(scn: Scenario) -> list[Any]:
    kind, values = scn.source["kind"], scn.source.get("values", [])
    if kind == "arrays2":
        return [(v, 2 * v) for v in values]
    if kind == "arrays_dict":
        return [{"x": v, "y": 2 * v} for v in values]
    if kind == "files":
        return list(range(len(scn.files)))
    return list(values)


def file_records(scn: Scenario, i: int) -> tuple[list[Any], int | None]:
    """The records file ``i`` yields and the record index where it fails (``None``: it does not)."""
    from ._build import file_layout

    records, _ = file_layout(scn.files[i], scn)
    fault = _fault_at_read(scn, i)
    if fault is None:
        return records, None
    if fault.action in ("corrupt_missing", "corrupt_fixed"):
        return records, 0
    if fault.action == "corrupt_trunc" and scn.files[i].reader["compression"] is not None:
        return records, len(records) - 1  # at most these come through before the error
    return records, fault.after


def _fault_at_read(scn: Scenario, i: int) -> Fault | None:
    for f in scn.faults:
        if f.action.startswith("corrupt") and f.trigger == i:
            return f
    return None


def _fault_for(scn: Scenario, pos: int, faults_on: bool) -> Fault | None:
    if not faults_on:
        return None
    for f in scn.faults:
        if f.stage == pos and f.raises and not f.action.startswith("corrupt"):
            return f
    return None


def _check(fault: Fault | None, x: Any) -> None:
    if fault is not None and canonical(x) == fault.trigger:
        raise ModelRaise(fault)


def _stream(scn: Scenario, faults_on: bool, limit_free: bool = False) -> Iterator[Any]:
    """The model's output stream; ``limit_free`` ignores take/skip/shard/drop_remainder (a
    superset of what any order of the unordered stages can give)."""
    src_fault = _fault_for(scn, 0, faults_on)

    def source() -> Iterator[Any]:
        for x in source_values(scn):
            _check(src_fault, x)
            yield x

    stream: Iterator[Any] = source()
    for pos, st in enumerate(scn.stages, 1):
        stream = _apply(scn, st, stream, _fault_for(scn, pos, faults_on), faults_on, limit_free)
    return stream


def _apply(
    scn: Scenario,
    st: dict[str, Any],
    up: Iterator[Any],
    fault: Fault | None,
    faults_on: bool,
    limit_free: bool,
) -> Iterator[Any]:
    op = st["op"]
    if op == "read":
        return _read(scn, up, faults_on)
    if op == "map":
        return (_checked(fault, x, lambda y: compute_map(st["fn"], y)) for x in up)
    if op == "filter":
        return (x for x in up if _checked(fault, x, lambda y: compute_filter(st["modulus"], y)))
    if op == "flat_map":
        return _flat(st, up, fault)
    if op == "then":
        return (_checked(fault, x, lambda y: y) for x in up)
    if op == "shuffle":
        return _shuffle(st, up)
    if op == "batch":
        return _batch(st["batch_size"], st["drop_remainder"] and not limit_free, up)
    if op == "unbatch":
        return (item for b in up for item in b.items)
    if op == "prefetch":
        return up
    if limit_free:
        return up
    if op == "take":
        return itertools.islice(up, st["n"])
    if op == "skip":
        return itertools.islice(up, st["n"], None)
    if op == "shard":
        return itertools.islice(up, st["index"], None, st["num_shards"])
    raise ValueError(f"no model for {op}")


def _checked(fault: Fault | None, x: Any, fn: Any) -> Any:
    _check(fault, x)
    return fn(x)


def _read(scn: Scenario, up: Iterator[Any], faults_on: bool) -> Iterator[Any]:
    for i in up:
        records, fails_at = file_records(scn, i)
        if not faults_on or fails_at is None:
            yield from records
            continue
        yield from records[:fails_at]
        fault = _fault_at_read(scn, i)
        assert fault is not None
        raise ModelRaise(fault)


def _flat(st: dict[str, Any], up: Iterator[Any], fault: Fault | None) -> Iterator[Any]:
    for x in up:
        ys = compute_flat(x)
        if fault is not None and canonical(x) == fault.trigger:
            if st["form"] == "list":
                raise ModelRaise(fault)
            yield from ys[: fault.after]
            raise ModelRaise(fault)
        yield from ys


def _shuffle(st: dict[str, Any], up: Iterator[Any]) -> Iterator[Any]:
    keep = st.get("min_after_dequeue", st["buffer_size"] - 1)
    held: list[Any] = []
    for x in up:
        held.append(x)
        while len(held) > keep:
            yield held.pop(0)
    yield from held


def _batch(size: int, drop: bool, up: Iterator[Any]) -> Iterator[Any]:
    held: list[Any] = []
    for x in up:
        held.append(x)
        if len(held) == size:
            yield RefBatch(held)
            held = []
    if held and not drop:
        yield RefBatch(held)


def model(scn: Scenario, demand: int | None, faults_on: bool = True) -> Outcome:
    """What a consumer that takes ``demand`` outputs (``None``: all) gets from the model."""
    out: list[Any] = []
    if demand == 0:
        return Outcome(out, None)
    stream = _stream(scn, faults_on)
    try:
        for x in stream:
            out.append(x)
            if demand is not None and len(out) >= demand:
                break
    except ModelRaise as exc:
        return Outcome(out, exc.fault)
    return Outcome(out, None)


def superset(scn: Scenario) -> list[Any]:
    """Every output any run could deliver, with limits lifted (for unordered comparisons)."""
    return list(_stream(scn, faults_on=False, limit_free=True))


def stage_inputs(scn: Scenario, limit_free: bool = False) -> dict[int, list[Any]]:
    """The elements entering each stage (position 0: the source's own), with no fault, eagerly
    (every element any read-ahead could reach); ``limit_free`` as in :func:`superset`."""
    seen: dict[int, list[Any]] = {0: source_values(scn)}
    current = seen[0]
    for pos, st in enumerate(scn.stages, 1):
        seen[pos] = current
        current = list(_apply(scn, st, iter(current), None, False, limit_free))
    return seen


def possible_faults(scn: Scenario) -> list[Fault]:
    """The raising faults whose element some stage may see (in some order of the unordered
    stages: a take after an unordered map may pass any of its inputs)."""
    ordered, free = stage_inputs(scn), stage_inputs(scn, limit_free=True)
    out = []
    for f in scn.faults:
        if not f.raises:
            continue
        seen = [*ordered[f.stage], *free[f.stage]]
        if f.action.startswith("corrupt"):
            if f.trigger in seen:
                out.append(f)
        elif any(canonical(x) == f.trigger for x in seen):
            out.append(f)
    return out


def order_kind(scn: Scenario) -> dict[str, bool]:
    """How outputs may be compared: ``exact`` order; else leaves as a multiset that is ``equal`` or
    a subset, with the ``count`` known or not. ``only_shuffles``: every unordered stage is a
    shuffle (its output count still follows from its input count)."""
    exact, equal, count, only_shuffles = True, True, True, True
    for st in scn.stages:
        op = st["op"]
        unordered = (
            op == "shuffle"
            or (op == "map" and not st["ordered"])
            or (op == "read" and st["parallel"] > 1)
            or (op == "then" and st["workers"] > 1)
        )
        if unordered:
            exact = False
            only_shuffles = only_shuffles and op == "shuffle"
            continue
        if exact:
            continue
        if op in ("take", "skip", "shard") or (op == "batch" and st["drop_remainder"]):
            equal = False
        elif op in ("filter", "flat_map") and not equal:
            count = False
        elif op == "unbatch":
            count = equal
    return {"exact": exact, "equal": equal, "count": count, "only_shuffles": only_shuffles}


def _unordered(st: dict[str, Any]) -> bool:
    op = st["op"]
    return (
        op == "shuffle"
        or (op == "map" and not st["ordered"])
        or (op == "read" and st["parallel"] > 1)
        or (op == "then" and st["workers"] > 1)
    )


def uncertain_reach(scn: Scenario, pos: int) -> bool:
    """True when which elements reach stage ``pos`` depends on the order of an unordered stage
    before it (a take, skip, shard or batch picks by position)."""
    unordered = False
    for st in scn.stages[: max(0, pos - 1)]:
        if _unordered(st):
            unordered = True
        elif unordered and st["op"] in ("take", "skip", "shard", "batch"):
            return True
    return False


def limits_demand(scn: Scenario) -> bool:
    """True when a ``take`` after an unordered stage makes which inputs are needed uncertain."""
    unordered = False
    for st in scn.stages:
        op = st["op"]
        if op == "shuffle" or (op == "map" and not st["ordered"]):
            unordered = True
        if (op == "read" and st["parallel"] > 1) or (op == "then" and st["workers"] > 1):
            unordered = True
        if op == "take" and unordered:
            return True
    return False
