"""What ``aiopipe inspect`` says about TFRecord files of ``tf.train.Example`` records.

The first record decides whether the file holds Examples or SequenceExamples (``message_kind``);
then every record (up to ``SUMMARISED``) is read with the general parser and each feature's kind,
value counts and presence are tallied.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..decode._features import KIND_NAMES
from ..decode._wire import Malformed, RawFeature, message_kind, parse_sequence_example

__all__ = ["ExampleSummary", "sniff"]

SUMMARISED = 100_000  # records tallied per file; the rest are only counted and checked


def sniff(record: bytes) -> str | None:
    """``"Example"``, ``"SequenceExample"`` or None (not recognised)."""
    return message_kind(record)


@dataclass
class _Tally:
    """One feature (or feature list) across the records that have it."""

    kinds: set[str] = field(default_factory=set)
    records: int = 0
    low: int = -1  # values (or steps) per record
    high: int = 0
    step_low: int = -1  # values per step, for feature lists
    step_high: int = 0

    def add(self, count: int) -> None:
        self.records += 1
        self.low = count if self.low < 0 else min(self.low, count)
        self.high = max(self.high, count)

    def add_step(self, count: int) -> None:
        self.step_low = count if self.step_low < 0 else min(self.step_low, count)
        self.step_high = max(self.step_high, count)


def _span(low: int, high: int, noun: str) -> str:
    count = str(low) if low == high else f"{low}-{high}"
    return f"{count} {noun}{'' if count == '1' else 's'}"


def _kind(raw: RawFeature) -> str:
    return KIND_NAMES.get(raw[0], "no list")


class ExampleSummary:
    """Feature names, kinds and counts over the records of one file."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.features: dict[str, _Tally] = {}
        self.lists: dict[str, _Tally] = {}
        self.records = 0
        self.others = 0  # records that did not parse

    def add(self, record: bytes) -> None:
        if self.records + self.others >= SUMMARISED:
            return
        try:
            context, lists = parse_sequence_example(record)
        except Malformed:
            self.others += 1
            return
        self.records += 1
        for name, raw in context.items():
            tally = self.features.setdefault(name, _Tally())
            tally.kinds.add(_kind(raw))
            tally.add(len(raw[1]))
        for name, steps in lists.items():
            tally = self.lists.setdefault(name, _Tally())
            tally.add(len(steps))
            for step in steps:
                tally.kinds.add(_kind(step))
                tally.add_step(len(step[1]))

    @staticmethod
    def describe(record: bytes) -> str:
        """One record's features as ``name: kind[count]``, sorted by name."""
        try:
            context, lists = parse_sequence_example(record)
        except Malformed as exc:
            return f"(not a tf.train.Example: {exc})"
        parts = [f"{n}: {_kind(r)}[{len(r[1])}]" for n, r in sorted(context.items())]
        parts += [f"{n}: feature list[{len(s)} steps]" for n, s in sorted(lists.items())]
        return ", ".join(parts) if parts else "(no features)"

    def lines(self, total: int) -> list[str]:
        seen = self.records + self.others
        scope = f"in {self.records} records" if seen >= total else f"in the first {seen} records"
        label = "context features" if self.kind == "SequenceExample" else "features"
        out = [f"  tf.train.{self.kind}: {len(self.features)} {label}, {scope}"]
        if self.others:
            out.append(f"  {self.others} records are not tf.train.{self.kind}s")
        for name, t in sorted(self.features.items()):
            kinds = " or ".join(sorted(t.kinds))
            out.append(
                f"    {name}: {kinds}, {_span(t.low, t.high, 'value')}, "
                f"in {t.records} of {self.records} records"
            )
        if self.kind == "SequenceExample":
            out.append(f"  {len(self.lists)} feature lists")
        for name, t in sorted(self.lists.items()):
            kinds = " or ".join(sorted(t.kinds)) or "no steps"
            per_step = _span(max(t.step_low, 0), t.step_high, "value")
            out.append(
                f"    {name}: feature list of {kinds}, {_span(t.low, t.high, 'step')}, "
                f"{per_step} per step, in {t.records} of {self.records} records"
            )
        return out
