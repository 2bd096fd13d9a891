"""One scenario, run in this process: its pipeline, its consumer, and the invariants it keeps."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

import aiopipe as ap

from ._build import build, file_layout
from ._faults import STATE, ConsumerError, Fault
from ._observe import Observer
from ._reference import (
    limits_demand,
    model,
    order_kind,
    possible_faults,
    stage_inputs,
    superset,
    uncertain_reach,
)
from ._scenario import Scenario
from ._values import RefBatch, canonical, leaves, short

PAUSE_POLL_S = 0.02
# anyio's own per-event-loop tasks (its process pool's reaper): they live as long as the loop.
_LOOP_TASKS = (
    "_shutdown_process_pool",
    "_forcibly_shutdown_process_pool_on_exit",
    "AnyIO process pool shutdown task",
)


@dataclass
class Facts:
    """What one run did, as seen by its consumer."""

    received: list[Any] = field(default_factory=list)
    exc: BaseException | None = None
    consumer_exc: ConsumerError | None = None
    timed_out: bool = False
    inflight_after: int = 0
    tasks_after: list[str] = field(default_factory=list)
    gens_open_after: int = 0
    pulled_paused: int | None = None
    left_at: float | None = None  # when the consumer stopped receiving (time.monotonic())
    seconds: float = 0.0


def run_scenario(scn: Scenario) -> tuple[list[str], Facts]:
    """Run ``scn``; returns its problems (empty when it kept every invariant) and its facts."""
    STATE.reset()
    root = Path(tempfile.mkdtemp(prefix="aiopipe-soak-"))
    facts = Facts()
    problems: list[str] = []
    try:
        with Observer() as obs:
            t0 = time.perf_counter()
            try:
                pipe = build(scn, root)
            except Exception as exc:
                return [f"build failed: {type(exc).__name__}: {exc}"], facts
            try:
                if scn.consumer["mode"] == "iter_sync":
                    _consume_sync(pipe, scn, facts)
                else:
                    anyio.run(_main, pipe, scn, facts, backend=scn.backend)
            except BaseException as exc:
                problems.append(f"escaped the event loop: {type(exc).__name__}: {exc!r:.120}")
                facts.exc = facts.exc or exc
            facts.seconds = time.perf_counter() - t0
            problems += obs.leftovers()
        problems += obs.noise()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return judge(scn, facts) + problems, facts


async def _main(pipe: ap.Pipeline[Any], scn: Scenario, facts: Facts) -> None:
    before = {t.id for t in anyio.get_running_tasks()}
    with anyio.CancelScope(deadline=anyio.current_time() + scn.timeout) as deadline:
        try:
            await _consume_async(pipe, scn, facts)
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException as exc:
            facts.exc = exc
    facts.timed_out = deadline.cancelled_caught
    facts.tasks_after = [
        str(t.name)
        for t in anyio.get_running_tasks()
        if t.id not in before and not str(t.name).endswith(_LOOP_TASKS)
    ]


def _after_exit(facts: Facts) -> None:
    facts.inflight_after = STATE.inflight
    facts.gens_open_after = STATE.gens_opened - STATE.gens_closed


async def _consume_async(pipe: ap.Pipeline[Any], scn: Scenario, facts: Facts) -> None:
    mode, action, at = scn.consumer["mode"], scn.consumer["action"], scn.consumer["at"]
    try:
        if mode == "collect":
            facts.received = await pipe.collect()
            facts.left_at = time.monotonic()
            return
        with anyio.CancelScope() as outside:
            async with pipe.open() as run:
                if action == "pause":
                    await _pause(run, max(at, 1), facts)
                    return
                if action != "none" and at == 0:
                    _act(action, outside, facts)
                    await anyio.lowlevel.checkpoint()
                    return
                async for x in run:
                    facts.received.append(x)
                    if action != "none" and len(facts.received) == at:
                        if action == "break":
                            facts.left_at = time.monotonic()
                            break
                        _act(action, outside, facts)
                        await anyio.lowlevel.checkpoint()
                else:
                    facts.left_at = time.monotonic()
    finally:
        _after_exit(facts)


def _act(action: str, outside: anyio.CancelScope, facts: Facts) -> None:
    facts.left_at = time.monotonic()
    if action == "raise":
        facts.consumer_exc = ConsumerError("the consumer's own error")
        raise facts.consumer_exc
    if action == "cancel":
        outside.cancel()


async def _pause(run: ap.Run[Any], at: int, facts: Facts) -> None:
    """Take ``at`` outputs, then stop receiving until the source stops being pulled."""
    async for x in run:
        facts.received.append(x)
        if len(facts.received) >= at:
            break
    last, stable = -1, 0
    for _ in range(200):
        await anyio.sleep(PAUSE_POLL_S)
        stable = stable + 1 if STATE.pulled == last else 0
        last = STATE.pulled
        if stable >= 5:
            break
    facts.pulled_paused = STATE.pulled


def _consume_sync(pipe: ap.Pipeline[Any], scn: Scenario, facts: Facts) -> None:
    action, at = scn.consumer["action"], scn.consumer["at"]
    try:
        with pipe.iter_sync(backend=scn.backend) as it:
            if action in ("break", "raise") and at == 0:
                facts.left_at = time.monotonic()
                if action == "raise":
                    facts.consumer_exc = ConsumerError("the consumer's own error")
                    raise facts.consumer_exc
                return
            for x in it:
                facts.received.append(x)
                if action != "none" and len(facts.received) == at:
                    facts.left_at = time.monotonic()
                    if action == "break":
                        break
                    facts.consumer_exc = ConsumerError("the consumer's own error")
                    raise facts.consumer_exc
            else:
                facts.left_at = time.monotonic()
    except BaseException as exc:
        facts.exc = exc
    finally:
        _after_exit(facts)


# -- the invariants ----------------------------------------------------------------------------


def judge(scn: Scenario, facts: Facts) -> list[str]:
    problems: list[str] = []
    if facts.timed_out:
        problems.append(f"hang: no end within {scn.timeout:.0f} s (received {len(facts.received)})")
    if facts.inflight_after:
        problems.append(f"{facts.inflight_after} sync call(s) still running when open() exited")
    if facts.tasks_after:
        problems.append(f"task left after exit: {', '.join(facts.tasks_after)[:200]}")
    if facts.gens_open_after:
        problems.append(f"{facts.gens_open_after} user generator(s) not closed when the run ended")
    if facts.timed_out:
        return problems
    action = scn.consumer["action"]
    if action == "pause":
        return problems + _judge_pause(scn, facts)
    demand = scn.consumer["at"] if action in ("break", "raise", "cancel") else None
    kind = order_kind(scn)
    if demand is not None and not kind["exact"]:
        kind["equal"] = False  # which k outputs come first is not promised
    lazy = model(scn, demand)
    certain = lazy.raised is not None and (
        kind["exact"]
        or (
            demand is None
            and not limits_demand(scn)
            and not uncertain_reach(scn, lazy.raised.stage)
        )
    )
    clean = model(scn, demand, faults_on=False).outputs
    possible = possible_faults(scn)
    exc = facts.exc
    if exc is None:
        if certain:
            problems.append(
                f"expected {lazy.raised.exc_kind} from stage {lazy.raised.stage} "  # type: ignore[union-attr]
                f"but the run ended cleanly with {len(facts.received)} outputs"
            )
        elif action == "raise" and facts.consumer_exc is not None:
            problems.append("the consumer's own exception vanished")
        problems += _judge_lost(scn, facts)
        problems += _judge_outputs(scn, kind, facts.received, clean, complete=True)
        return problems
    if exc is facts.consumer_exc:
        # Stage errors may ride along as "also raised" notes; nothing may call it a stage's.
        notes = [n for n in getattr(exc, "__notes__", []) if "raised in stage" in n]
        if any(not n.startswith("aiopipe: also raised") for n in notes):
            problems.append(f"the consumer's exception got a stage note: {notes}")
        problems += _judge_outputs(scn, kind, facts.received, clean, complete=True)
        return problems
    if _is_cancelled(exc):
        return [*problems, f"cancellation escaped the run: {exc!r}"]
    match = [f for f in possible if _matches(scn, exc, f)]
    if not match:
        return [*problems, f"unexpected exception: {_exc_text(exc)}"]
    fault = match[0]
    if facts.consumer_exc is not None:
        problems.append(f"the consumer's own exception was replaced by {_exc_text(exc)}")
    problems += _judge_notes(scn, exc, fault)
    problems += _judge_origin(scn, exc, fault)
    problems += _judge_others(exc, fault)
    problems += _judge_prefix(scn, kind, facts.received, clean, lazy.outputs if certain else None)
    return problems


def _is_cancelled(exc: BaseException) -> bool:
    import asyncio

    import trio

    return isinstance(exc, asyncio.CancelledError | trio.Cancelled)


def _stage_exc(exc: BaseException, fault: Fault) -> BaseException:
    """The object that must carry the note: a StopIteration may come wrapped in RuntimeError."""
    if fault.exc_kind in ("StopIteration", "StopAsyncIteration") and type(exc) is RuntimeError:
        return exc.__cause__ or exc.__context__ or exc
    return exc


def _matches(scn: Scenario, exc: BaseException, fault: Fault) -> bool:
    stage = scn.stage_name(fault.stage)
    if fault.action.startswith("corrupt"):
        path = getattr(exc, "path", None) or getattr(exc, "filename", None)
        want = (
            ap.CorruptRecordError if fault.exc_kind == "CorruptRecordError" else FileNotFoundError
        )
        return isinstance(exc, want) and str(path).endswith(f"f{fault.trigger}.dat")
    st = scn.stages[fault.stage - 1] if fault.stage else {}
    if _swallowed_stop_iteration(exc, fault):
        return True
    inner = _stage_exc(exc, fault)
    if st.get("executor") == "process":
        return type(inner).__name__ == _type_name(fault.exc_kind) and fault.token in str(inner)
    return any(inner is e for e, s, _ in STATE.raised if s == stage)


def _swallowed_stop_iteration(exc: BaseException, fault: Fault) -> bool:
    """A sync ``map`` fn runs through C's ``map()``, which takes a StopIteration for its own end
    and drops the object: the engine can only say what happened (a RuntimeError, no cause)."""
    return (
        fault.exc_kind == "StopIteration"
        and type(exc) is RuntimeError
        and exc.__cause__ is None
        and "raised StopIteration" in str(exc)
    )


def _type_name(kind: str) -> str:
    return kind


def _judge_notes(scn: Scenario, exc: BaseException, fault: Fault) -> list[str]:
    problems = []
    stage = scn.stage_name(fault.stage)
    inner = _stage_exc(exc, fault)
    notes = [*getattr(exc, "__notes__", ()), *getattr(inner, "__notes__", ())]
    want = f"aiopipe: raised in stage '{stage}'"
    if not any(n.startswith(want) for n in notes):
        problems.append(f"no note naming stage {stage!r} on {_exc_text(exc)}")
    # A StopIteration cannot leave a coroutine (PEP 479) nor a StopAsyncIteration an async
    # iterator without ending it: a RuntimeError caused by the original object is the honest form.
    ctx, seen = exc.__context__, 0
    while ctx is not None and seen < 10:
        if isinstance(ctx, anyio.WouldBlock | anyio.EndOfStream) and ctx is not inner:
            problems.append(f"internal exception in the context chain: {type(ctx).__name__}")
            break
        ctx, seen = ctx.__context__, seen + 1
    return problems


def _judge_origin(scn: Scenario, exc: BaseException, fault: Fault) -> list[str]:
    """A note saying which file and record a failing element came from names the right one."""
    notes = [n for n in getattr(_stage_exc(exc, fault), "__notes__", ()) if " came from " in n]
    if not notes or not scn.files or fault.action.startswith("corrupt"):
        return []
    where = re.sub(r"\S*/(f\d+\.dat)", r"\1", notes[0].split(" came from ", 1)[1])
    reader = scn.files[0].reader
    right = []
    for i, spec in enumerate(scn.files):
        records, _ = file_layout(spec)
        for r, record in enumerate(records):
            if canonical(record) == fault.trigger:
                right.append(_describe_record(reader, f"f{i}.dat", r))
    if right and not any(where.startswith(w) for w in right):
        return [f"origin note names {where!r}, the element came from {right[0]!r}"]
    return []


def _describe_record(reader: dict[str, Any], path: str, r: int) -> str:
    kind = reader["kind"]
    if kind == "TextLines":
        return f"line {r + reader['skip_header_lines'] + 1} of {path}"
    if kind == "WholeFile":
        return path
    return f"record {r} of {path}"


def _judge_lost(scn: Scenario, facts: Facts) -> list[str]:
    """A stage error raised before the consumer stopped receiving reaches it (API.md 1: "or at
    the exit of open() if it stops receiving first"). Not judged past a take(), which may stop
    upstream before or after an error there, nor for an outside cancel."""
    if facts.left_at is None or scn.consumer["action"] in ("raise", "cancel"):
        return []
    if any(st["op"] == "take" for st in scn.stages):
        return []
    lost = [f"{type(e).__name__} in {s!r}" for e, s, t in STATE.raised if t < facts.left_at]
    if lost:
        return [f"stage error raised before the consumer left, never delivered: {lost[0]}"]
    return []


def _judge_others(exc: BaseException, fault: Fault) -> list[str]:
    """Every other exception a stage raised is kept as a note on the one the consumer got."""
    inner = _stage_exc(exc, fault)
    notes = " ".join([*getattr(exc, "__notes__", ()), *getattr(inner, "__notes__", ())])
    if _swallowed_stop_iteration(exc, fault):
        notes += " " + str(exc)  # the StopIteration object itself is gone; its message names it
    lost = [
        f"{type(e).__name__} in {stage!r}"
        for e, stage, _ in STATE.raised
        if e is not exc and e is not inner and type(e).__name__ not in notes
    ]
    if lost:
        return [f"another stage error lost (not a note on the first): {', '.join(lost)}"]
    return []


def _exc_text(exc: BaseException) -> str:
    notes = getattr(exc, "__notes__", [])
    text = f"{type(exc).__name__}: {exc}"[:160]
    if isinstance(exc, BaseExceptionGroup):
        text += f" [group of {[type(e).__name__ for e in exc.exceptions]}]"
    return text + (f" notes={notes}" if notes else "")


def _judge_outputs(
    scn: Scenario, kind: dict[str, bool], got: list[Any], want: list[Any], complete: bool
) -> list[str]:
    if kind["exact"]:
        g, w = [canonical(x) for x in got], [canonical(x) for x in want]
        if g != w:
            return [f"output differs: {_diff(g, w)}"]
        return []
    problems = []
    if kind["count"] and len(got) != len(want):
        problems.append(f"output count {len(got)}, model says {len(want)} (order not promised)")
    if kind["equal"]:
        if leaves(got) != leaves(want):
            problems.append(f"output multiset differs: {_multiset_diff(leaves(got), leaves(want))}")
    elif not leaves(got) <= leaves(superset(scn)):
        diff = _multiset_diff(leaves(got), leaves(superset(scn)))
        problems.append(f"outputs not in what the input can give: {diff}")
    return problems


def _judge_prefix(
    scn: Scenario, kind: dict[str, bool], got: list[Any], clean: list[Any], lazy: list[Any] | None
) -> list[str]:
    """Outputs received before an error: what the model delivers before it, or fewer."""
    if kind["exact"]:
        g = [canonical(x) for x in got]
        w = [canonical(x) for x in clean]
        if g != w[: len(g)]:
            return [f"outputs before the error differ: {_diff(g, w[: len(g)])}"]
        if lazy is not None and len(got) > len(lazy):
            return [
                f"{len(got)} outputs before the error, the model has only {len(lazy)}: "
                f"last {short(g[len(lazy) :][:3])}"
            ]
        return []
    if lazy is not None and kind["only_shuffles"] and not lazy and got:
        return [f"{len(got)} outputs before the error from a shuffle that never saw its input end"]
    if not leaves(got) <= leaves(superset(scn)):
        return [
            f"outputs before the error not in what the input can give: "
            f"{_multiset_diff(leaves(got), leaves(superset(scn)))}"
        ]
    return []


def _judge_pause(scn: Scenario, facts: Facts) -> list[str]:
    problems = []
    if facts.exc is not None:
        problems.append(f"unexpected exception while paused: {_exc_text(facts.exc)}")
    want = model(scn, len(facts.received), faults_on=False).outputs
    kind = order_kind(scn)
    kind["equal"] = kind["exact"]
    problems += _judge_outputs(scn, kind, facts.received, want, complete=False)
    bound = read_ahead_bound(scn, len(facts.received))
    if facts.pulled_paused is not None and facts.pulled_paused > bound:
        problems.append(
            f"read-ahead: {facts.pulled_paused} elements pulled from the source while the "
            f"consumer paused after {len(facts.received)}; bound {bound}"
        )
    return problems


SOURCE_BUFFER = 512  # a source stage's output stream (DEFAULT_BUFFER)


def read_ahead_bound(scn: Scenario, consumed: int) -> int:
    """How many source elements a paused pipeline may have pulled.

    Each stage may hold its buffer counted in elements as the user configures it, whatever the
    elements are (512 by default; a batch of 256 counts as 256 elements), plus what it is working
    on: a batch being assembled, a shuffle buffer, workers' slices. Converted to source elements
    through the ratio of source elements to elements at that stage (a filter that keeps 1 in 3
    costs 3 per element), tripled, plus the consumed outputs and slack for chunking. Tripled: a
    stream carries chunks as big as its buffer, so next to a full stream its receiver may hold a
    whole buffer's chunk and its sender be making another. The source's own output stream (512
    elements) counts the same way.
    """
    inputs = stage_inputs(scn)
    n_source = max(1, len(inputs[0]))
    final = _outputs(scn)
    total = 0.0
    for pos, st in enumerate(scn.stages, 1):
        out = inputs.get(pos + 1, final)
        out_leaves = sum(len(x.items) if isinstance(x, RefBatch) else 1 for x in out)
        per_leaf = n_source / out_leaves if out_leaves else n_source
        op, buf = st["op"], st.get("buffer")
        if op == "batch":
            # Its default buffer holds 512 source elements' worth of batches (at least 4).
            held = ((buf or max(4, 512 // st["batch_size"])) + 1) * st["batch_size"]
        elif op == "prefetch":
            held = st["n"]
        else:
            held = (buf or 512) + 2 * st.get("workers", st.get("parallel", 1)) * 64
            if op == "shuffle":  # its buffer_size counts its own elements (batches, if batched)
                held += int(st["buffer_size"] * out_leaves / max(1, len(out)))
        total += min(held * per_leaf, n_source)
    ratio = n_source / max(1, len(final))
    return int(3 * (total + SOURCE_BUFFER) + consumed * ratio + 512)


def _outputs(scn: Scenario) -> list[Any]:
    return model(scn, None, faults_on=False).outputs


def _diff(got: list[Any], want: list[Any]) -> str:
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            lengths = f"lengths {len(got)}/{len(want)}"
            return f"first at {i}: got {short(g, 60)}, want {short(w, 60)} ({lengths})"
    extra = (got[len(want) :] or want[len(got) :])[:3]
    return f"lengths {len(got)} vs {len(want)}; extra {short(extra, 80)}"


def _multiset_diff(got: Counter[Any], want: Counter[Any]) -> str:
    extra, missing = got - want, want - got
    return (
        f"{sum(extra.values())} extra (e.g. {short(list(extra)[:3], 60)}), "
        f"{sum(missing.values())} missing (e.g. {short(list(missing)[:3], 60)})"
    )
