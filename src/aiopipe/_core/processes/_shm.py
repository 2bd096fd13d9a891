"""Messages between a map stage and its worker process, with big buffers in shared memory.

Both ends use the same :class:`Codec`. Objects are pickled with protocol 5, which hands contiguous
buffers (numpy arrays, bytearrays) to a callback instead of copying them into the pickle. Buffers of
at least ``threshold`` bytes are copied once into a shared-memory segment that the sender owns
(an anonymous ``memfd``, or an unlinked temporary file where there is none; its descriptor crosses
the socket once, when the segment is made), and the receiver unpickles views of that segment: no
pickle copy, no socket copy, no copy on arrival.

A segment is reused once the receiver has dropped every view of it: the views share one base array
whose finaliser queues the segment's id, and the next message the receiver sends carries the id
back. A receiver that keeps its arrays (``collect()``) keeps its segments; past ``max_bytes`` owned
by one sender, buffers travel in the pickle instead.

Wire format of one message: ``<II`` (header length, body length), the pickled header, the body;
descriptors of new segments ride with the first bytes (``SCM_RIGHTS``).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import struct
import tempfile
import weakref
from collections import deque
from typing import Any, NamedTuple

__all__ = ["PREFIX", "Codec", "Header", "new_segment_fd"]

PREFIX = struct.Struct("<II")
ALIGN = 64  # every buffer starts on a cache line, so numpy sees aligned data
MIN_SEGMENT = 1 << 20
# Free segments are kept for reuse (mapping fresh memory costs a page fault per 4 KiB on both
# sides) until the sender owns this much; past it, free ones are unmapped first.
KEEP_BYTES = 256 << 20


class Header(NamedTuple):
    segment: int | None  # the segment holding this message's buffers, if any
    layout: list[tuple[int, int]]  # (offset, length) of each out-of-band buffer, in order
    new: list[tuple[int, int]]  # (id, size) of segments made for this message: fds in ancdata
    freed: list[int]  # ids of the receiver's segments whose views the sender dropped
    dropped: list[int]  # ids of the sender's segments it unmapped (the receiver may forget them)


def new_segment_fd(size: int) -> int:
    """A file descriptor of ``size`` bytes of shared memory that has no name to clean up."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("aiopipe", os.MFD_CLOEXEC)
    else:  # macOS and other POSIX systems: an unlinked temporary file
        with tempfile.TemporaryFile(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as f:
            fd = os.dup(f.fileno())
    os.ftruncate(fd, size)
    return fd


def _map(fd: int, size: int) -> mmap.mmap:
    """Map a whole segment with its pages already in place (``MAP_POPULATE`` where there is
    one): one system call instead of a page fault per 4 KiB at first touch, on each side."""
    flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
    return mmap.mmap(fd, size, flags=flags)


def _segment_size(size: int) -> int:
    """Room for ``size`` bytes, rounded up to an eighth of the next power of two (at most 12.5 %
    more: a 38.5 MB batch of images gets 40 MB, not 64) so that sizes near each other share."""
    step = max(MIN_SEGMENT, 1 << (size - 1).bit_length()) // 8
    return max(MIN_SEGMENT, -(-size // step) * step)


def _address(buf: memoryview) -> int:
    """Where ``buf``'s bytes start (numpy is here: only results made by numpy are reserved)."""
    import numpy as np

    address: int = np.frombuffer(buf, np.uint8).__array_interface__["data"][0]
    return address


def _is_room(buf: memoryview, reserved: tuple[int, int | None, int, int]) -> bool:
    return buf.nbytes == reserved[2] and _address(buf) == reserved[3]


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


class Codec:
    """One end of a worker channel: encodes what it sends, decodes what it receives."""

    def __init__(self, threshold: int, max_bytes: int) -> None:
        self.threshold = threshold
        self.max_bytes = max_bytes
        self._own: dict[int, mmap.mmap] = {}  # segments we made (we write them)
        self._own_free: deque[int] = deque()  # ours, not viewed by the peer any more
        self._own_bytes = 0
        self._next_id = 0
        self._peer: dict[int, mmap.mmap] = {}  # segments the peer made (we view them)
        # Peer segments whose views we dropped; appended by finalisers, in any thread.
        self._released: deque[int] = deque()
        self.extra_fds: list[int] = []  # descriptors a message carried besides segments
        # Room handed out by reserve() for the next message: (segment, its fd if the peer has
        # not got it yet, bytes, address).
        self._reserved: tuple[int, int | None, int, int] | None = None
        self._unsent: dict[int, int] = {}  # fds of our free segments that the peer never got
        self._dropped: list[int] = []  # unmapped outside encode(): said in the next header

    # -- sending ----------------------------------------------------------------------------
    def reserve(self, nbytes: int) -> memoryview | None:
        """Writable room for ``nbytes`` in shared memory, for a result to be made in place (None
        past ``max_bytes``). If the next message's one big buffer is that room, it is sent
        without a copy; else the room goes back to the free segments after that message."""
        got = self._allocate(_aligned(nbytes), self._dropped)
        if got is None:
            return None
        seg, fd = got
        room = memoryview(self._own[seg])[:nbytes]
        self._reserved = (seg, fd, nbytes, _address(room))
        return room

    def encode(self, obj: Any) -> tuple[list[bytes | memoryview], list[int]]:
        """``obj`` as the pieces of one message, and the descriptors to send with it."""
        big: list[memoryview] = []

        def out_of_band(buf: pickle.PickleBuffer) -> bool:
            raw = buf.raw()
            if raw.nbytes < self.threshold:
                return True  # small: in the pickle
            big.append(raw)
            return False

        body = pickle.dumps(obj, protocol=5, buffer_callback=out_of_band)
        segment: int | None = None
        layout: list[tuple[int, int]] = []
        new: list[tuple[int, int]] = []
        fds: list[int] = []
        dropped, self._dropped = self._dropped, []
        reserved, self._reserved = self._reserved, None
        if reserved is not None and len(big) == 1 and _is_room(big[0], reserved):
            segment, fd, nbytes, _ = reserved  # written in place: nothing to copy
            if fd is not None:
                new.append((segment, len(self._own[segment])))
                fds.append(fd)
            layout.append((0, nbytes))
            reserved = None
        elif big:
            total = sum(_aligned(b.nbytes) for b in big)
            got = self._allocate(total, dropped)
            if got is None:  # we own too much shared memory already: send plain bytes
                body = pickle.dumps(obj, protocol=5)
            else:
                segment, fd = got
                if fd is not None:
                    new.append((segment, len(self._own[segment])))
                    fds.append(fd)
                mm, offset = self._own[segment], 0
                for b in big:
                    mm[offset : offset + b.nbytes] = b  # the one copy of the data
                    layout.append((offset, b.nbytes))
                    offset += _aligned(b.nbytes)
        if reserved is not None:
            # Not sent: free again, after the copies above (the buffers may be views of it).
            self._own_free.append(reserved[0])
            if reserved[1] is not None:
                self._unsent[reserved[0]] = reserved[1]
        freed = []
        while self._released:
            freed.append(self._released.popleft())
        head = pickle.dumps(Header(segment, layout, new, freed, dropped), protocol=5)
        return [PREFIX.pack(len(head), len(body)), head, body], fds

    def _allocate(self, size: int, dropped: list[int]) -> tuple[int, int | None] | None:
        """A free segment of at least ``size`` bytes (reused, or new with its fd)."""
        fits = [
            i for i in self._own_free if size <= len(self._own[i]) <= max(4 * size, MIN_SEGMENT)
        ]
        if fits:
            best = min(fits, key=lambda i: len(self._own[i]))
            self._own_free.remove(best)
            return best, self._unsent.pop(best, None)
        cap = _segment_size(size)
        limit = min(self.max_bytes, KEEP_BYTES)
        while self._own_free and self._own_bytes + cap > limit:
            self._unmap(self._own_free.popleft(), dropped)
        if self._own_bytes + cap > self.max_bytes:
            return None
        fd = new_segment_fd(cap)
        seg = self._next_id
        self._next_id += 1
        self._own[seg] = _map(fd, cap)
        self._own_bytes += cap
        return seg, fd

    def _unmap(self, seg: int, dropped: list[int]) -> None:
        mm = self._own.pop(seg)
        self._own_bytes -= len(mm)
        mm.close()
        fd = self._unsent.pop(seg, None)
        if fd is not None:
            os.close(fd)  # the peer never had it
        else:
            dropped.append(seg)

    # -- receiving --------------------------------------------------------------------------
    def decode(self, head: bytes | memoryview, body: bytes | memoryview, fds: list[int]) -> Any:
        """The object of one message (``head`` and ``body`` may be reused after this returns)."""
        header: Header = pickle.loads(head)
        # Descriptors past the new segments' are the caller's (see ``extra_fds``).
        self.extra_fds.extend(fds[len(header.new) :])
        for (seg, size), fd in zip(header.new, fds[: len(header.new)], strict=True):
            try:
                self._peer[seg] = _map(fd, size)
            finally:
                os.close(fd)
        self._own_free.extend(header.freed)
        for seg in header.dropped:
            # Our views of it are gone (it was free): the mapping goes with the last reference.
            self._peer.pop(seg, None)
        if header.segment is None:
            return pickle.loads(body)
        import numpy as np  # out-of-band buffers come from numpy (or bytearray): numpy is here

        base = np.frombuffer(self._peer[header.segment], dtype=np.uint8)
        # Every view below keeps ``base`` alive; when the last one dies the segment is free.
        weakref.finalize(base, self._released.append, header.segment)
        views = [base[off : off + n] for off, n in header.layout]
        del base
        return pickle.loads(body, buffers=views)

    def close(self) -> None:
        """Unmap what we own; views of peer segments keep their mappings until they die."""
        for mm in self._own.values():
            with contextlib.suppress(BufferError):  # a result made in place may still be alive
                mm.close()
        self._own.clear()
        for fd in self._unsent.values():
            os.close(fd)
        self._unsent.clear()
        self._own_free.clear()
        self._peer.clear()
