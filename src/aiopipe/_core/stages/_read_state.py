"""The state of a lane-mode ``read`` (one lane, or ``parallel`` lanes in completion order).

A :class:`Ledger` keeps, on the event loop, every file the lanes have taken and not finished:
its input index, path, upstream position and how many of its records have entered the output
stream. Each piece a lane sends gets a :class:`Node` as its mark, filled in at the instant the
piece enters the stream (``Outbox.send``'s ``on_sent``), so marks follow stream order even when
lanes' sends interleave: the piece's ``(file, records)`` runs, a link to the next piece's node,
and what each change to the ledger replaced until that next piece. Undoing those changes from
the newest node back gives the ledger as it was before any piece, so a send copies nothing. A
piece that joined the chunk of the one before it (``Outbox.append``) is the next node: a
position past a node's records reaches into it.

The state ``k`` records after a node is its ledger advanced by those ``k`` records: which files
are open and how far, the next input index no lane has taken, and the upstream position of the
oldest unfinished file, from which the resumed stage re-reads paths (checking the paths of the
files it reopens). With ``parallel > 1`` the order depended on timing, so the state also lists
every ``(file, records)`` run sent after that point (walking the links to the newest node): a
resumed read emits exactly those first, in that order, so the stages after it replay the same
sequence they saw. The state holds the open files and that replay list; neither grows with the
position.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from ..engine._channel import Outbox
from ..engine._state import Position, resolve, shifted

__all__ = ["LaneRestore", "Ledger", "Node", "Plan", "Runs", "check_lane_state", "ranges"]

# (input index, records) of consecutive records of one file, in output order.
Runs = list[tuple[int, int]]
# What the ledger holds per unfinished file: (path, records delivered, upstream position).
_Entry = tuple[str, int, "Position | None"]


class Node:
    """The mark of one piece of a lane-mode read's output (see the module docstring)."""

    __slots__ = ("after", "next", "next_at", "next_index", "runs", "size")

    def __init__(self, runs: tuple[tuple[int, int], ...]) -> None:
        self.runs = runs
        self.size = sum(n for _, n in runs)
        # What the ledger's files were before each change made from this piece's entry to the
        # next piece's, in order: ``(index, entry or None)``. Undone newest first, these give
        # the ledger as it was at any node, without a copy of it per piece (a copy cost
        # O(open files) per piece: with 1,024 lanes of one record each, most of a run).
        self.after: list[tuple[int, _Entry | None]] = []
        self.next_index = 0
        self.next_at: Position | None = None
        self.next: Node | None = None


class Plan:
    """A saved lane-mode state, parsed: what a resumed read reopens, drops and replays."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.first = int(state["first"])
        self.next = int(state["next"])
        self.started = {int(i): (str(p), int(d)) for i, p, d in state["files"]}
        self.queued = [(int(lo), int(hi)) for lo, hi in state["queued"]]
        self.replay = [(int(i), int(n)) for i, n in state.get("replay", [])]
        # Input up to here must be taken before the lanes start: files that are reopened,
        # and files the replay reads that were taken after the saved position.
        self.need = max([self.next, *(i + 1 for i, _ in self.replay)])

    def keeps(self, index: int) -> bool:
        """Whether the file at ``index`` (taken before the saved position) still has records."""
        return index >= self.next or any(lo <= index < hi for lo, hi in self.queued)


def check_lane_state(name: str, entry: dict[str, Any]) -> None:
    try:
        Plan(entry)
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"state is damaged: stage '{name}' expects first/next/files/queued, got {entry!r:.120}"
        ) from None


class Ledger:
    """The unfinished files of a lane-mode read and the chain of its marks."""

    def __init__(self, runner: Any, *, replay: bool) -> None:
        self.runner = runner  # the Resolver whose positions carry our nodes
        self.replay = replay
        self.files: dict[int, _Entry] = {}
        self.next_index = 0
        self.next_at: Position | None = None
        self.last: Node | None = None
        self.tail: list[Any] | None = None  # the chunk of the newest piece sent

    def taken(self, base: int, paths: Sequence[Any], at: Position | None) -> list[str]:
        """A lane took ``paths``, input indexes ``base ..``: they are open until they end."""
        names = [os.fspath(p) for p in paths]
        for i, path in enumerate(names):
            self._set(base + i, (path, 0, shifted(at, i)))
        self.next_index = base + len(names)
        self.next_at = shifted(at, len(names))
        return names

    def ended(self, index: int) -> None:
        if index in self.files:
            self._set(index, None)

    def _set(self, index: int, entry: _Entry | None) -> None:
        """Change one file's entry, remembering the old one on the newest node."""
        files = self.files
        if self.last is not None:
            self.last.after.append((index, files.get(index)))
        if entry is None:
            del files[index]
        else:
            files[index] = entry

    def passed(self, index: int, n: int) -> None:
        """``n`` records of file ``index`` were passed over without being sent (a bad record
        skipped under ``on_error="skip"``): a resumed read starts after them too."""
        entry = self.files.get(index)
        if entry is not None:
            self._set(index, (entry[0], entry[1] + n, entry[2]))

    def delivered(self, index: int) -> int:
        entry = self.files.get(index)
        return entry[1] if entry is not None else 0

    # -- sending -----------------------------------------------------------------------------

    async def send(
        self,
        outbox: Outbox,
        items: list[Any],
        runs: Runs,
        on_sent: Callable[[int, int, int], None] | None = None,
        *,
        failing: bool = False,
    ) -> None:
        """Send ``items`` (made of ``runs``) in pieces of at most the stream's chunk size, each
        with a node of its own that is filled in as the piece enters the stream."""
        if not failing and self.tail is not None:
            # Into the chunk of the newest piece if nobody has taken it yet, with a node of its
            # own, next in the chain, which is what their positions reach: a position ``k`` past
            # the end of a node's records is ``k - size`` into the next node (``resolve``).
            # Lanes of one record each (an object store's small objects) then cost the stages
            # downstream one chunk per many records instead of one each.
            node = Node(tuple(runs))
            if outbox.append(self.tail, items, partial(self._entered, node, on_sent, 0)):
                return
        limit = outbox.limit
        start, r, used = 0, 0, 0  # runs[r] has ``used`` records in earlier pieces
        while start < len(items):
            stop = min(len(items), start + limit)
            piece_runs: list[tuple[int, int]] = []
            want = stop - start
            while want:
                index, count = runs[r]
                n = min(count - used, want)
                piece_runs.append((index, n))
                want -= n
                used += n
                if used == count:
                    r, used = r + 1, 0
            node = Node(tuple(piece_runs))
            told = partial(self._entered, node, on_sent, start)
            piece, at = items[start:stop], (self.runner, node, 0)
            self.tail = piece
            if failing:
                await outbox.send_before_failing(piece, told, at)
            else:
                await outbox.send(piece, told, at)
            start = stop

    def _entered(
        self,
        node: Node,
        on_sent: Callable[[int, int, int], None] | None,
        base: int,
        first: int,
        offset: int,
        n: int,
    ) -> None:
        """The piece of ``node`` is in the stream: the ledger before it becomes its mark, and
        ``on_sent`` is told where its items went (``Outbox.send``'s ``on_sent``, bound by
        ``partial`` to the node, and to where the piece starts in the caller's items)."""
        node.next_index, node.next_at = self.next_index, self.next_at
        if self.last is not None:
            self.last.next = node
        self.last = node
        files = self.files
        for index, k in node.runs:
            entry = files.get(index)
            if entry is not None:
                self._set(index, (entry[0], entry[1] + k, entry[2]))
        if on_sent is not None:
            on_sent(first, base + offset, n)

    def _files_at(self, chain: list[Node]) -> dict[int, _Entry]:
        """The files as they were when ``chain[0]``'s piece entered the stream: the ledger now,
        with every change made since undone, newest first. Costs the changes since then, which
        the stream's bound keeps small."""
        files = dict(self.files)
        for walk in reversed(chain):
            for index, old in reversed(walk.after):
                if old is None:
                    files.pop(index, None)
                else:
                    files[index] = old
        return files

    # -- resolving ---------------------------------------------------------------------------

    def resolve(self, node: Node, k: int, out: dict[int, Any]) -> dict[str, Any]:
        while k > node.size and node.next is not None:
            k -= node.size  # past this node's records: into pieces that joined its chunk
            node = node.next
        chain = [node]  # the node and every newer one
        while (later := chain[-1].next) is not None:
            chain.append(later)
        files = self._files_at(chain)
        rest: Runs = []
        for index, n in node.runs:
            now = min(k, n)
            k -= now
            if now:
                path, done, at = files.get(index, ("", 0, None))
                files[index] = (path, done + now, at)
            if n > now:
                rest.append((index, n - now))
        state: dict[str, Any] = {}
        if self.replay:
            for walk in chain[1:]:
                rest.extend(walk.runs)
            state["replay"] = [list(run) for run in _merged(rest)]
        first = min(files) if files else node.next_index
        resolve(files[first][2] if files else node.next_at, out)
        state.update(
            first=first,
            next=node.next_index,
            files=[[i, e[0], e[1]] for i, e in sorted(files.items()) if e[1]],
            queued=ranges(sorted(i for i, e in files.items() if not e[1])),
        )
        return state


def _merged(runs: Runs) -> Runs:
    """Consecutive runs of one file as one (run-length encoding of the file sequence)."""
    out: Runs = []
    for index, n in runs:
        if out and out[-1][0] == index:
            out[-1] = (index, out[-1][1] + n)
        elif n:
            out.append((index, n))
    return out


def ranges(indexes: Sequence[int]) -> list[list[int]]:
    """Sorted indexes as ``[lo, hi)`` ranges of consecutive ones."""
    out: list[list[int]] = []
    for i in indexes:
        if out and out[-1][1] == i:
            out[-1][1] = i + 1
        else:
            out.append([i, i + 1])
    return out


class LaneRestore:
    """What a lane-mode read does before its lanes start on a saved state: take the input
    again from the oldest unfinished file, check and reopen the files in progress, and emit the
    replay list. The runner's lanes then go on from :attr:`restored`, then from new input."""

    def __init__(self, plan: Plan, ledger: Ledger, name: str) -> None:
        self.plan = plan
        self.ledger = ledger
        self.name = name
        # (input index, path, records delivered) to read before any new input, in input order.
        self.restored: list[tuple[int, str, int]] = []
        self.paths: dict[int, str] = {}

    def received(self, base: int, paths: list[str]) -> None:
        """Input ``base ..`` taken again: keep the files with records left, drop the rest."""
        plan, ledger = self.plan, self.ledger
        for i, path in enumerate(paths):
            index = base + i
            saved = plan.started.get(index)
            if saved is not None:
                if saved[0] != path:
                    raise ValueError(
                        f"read: the saved state was reading {saved[0]!r} as input element "
                        f"{index} of stage '{self.name}', but this pipeline's element {index} "
                        f"is {path!r}: the state is from another input"
                    )
                ledger.passed(index, saved[1])
            elif index < plan.next and not plan.keeps(index):
                ledger.ended(index)  # finished before the saved position
                continue
            self.paths[index] = path
            self.restored.append((index, path, ledger.delivered(index)))

    def ended_early(self, got: int) -> ValueError:
        return ValueError(
            f"read: the saved state of stage '{self.name}' needs input up to element "
            f"{self.plan.need - 1}, but the input ended at {got}: it is not the input the "
            f"state was saved with"
        )

    def lanes_start(self) -> list[tuple[int, str, int]]:
        """After the replay: the files to go on with, each from its delivered count."""
        ledger = self.ledger
        return [(i, p, ledger.delivered(i)) for i, p, _ in self.restored if i in ledger.files]
