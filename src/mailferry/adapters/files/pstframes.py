"""Measured PST messages' frames (``pstmail.Frame``) kept for their copy, bounded per process.

Planning measures a window of a folder, reading every attachment (libpff loads an attachment's
data whenever it is opened, ~80 MB/s, checking every block twice), then the window's messages are
copied in that order. A kept frame spares reading them again: at volume that was a quarter of the
time (`benchmarks/archives.py --pst-copies 80`: 33 s → 25 s).

One ``Frames`` serves every PST session of a process (``SHARED``: a run's lanes each open one, a
batch runs several runs): ``limit`` bytes in memory; past that, the oldest frames go whole to a
spill file (an unlinked temporary file of at most ``spill`` bytes and a quarter of the free space
where it is, emptied whenever every frame in it has been taken); past that, the oldest are
dropped and their messages built the long way. Memory stays flat whatever the size of a folder
and the number of lanes.
"""

from __future__ import annotations

import ctypes
import functools
import os
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import IO, cast

from mailferry.adapters.files.pstmail import Frame
from mailferry.logs import get_logger

log = get_logger(__name__)

# Bytes of frames, attachments included, kept in memory for the whole process (the rest goes to
# the spill file, read back at page cache speed): with the read-ahead's 8 MiB, a PST of 1.3 GB in
# folders of up to 6,110 messages peaked at 147-153 MB RSS with 8 MiB here (24 MiB: 178-202).
FRAMES_LIMIT = 8 << 20
# Bytes of frames in the spill file: a window of big mail (5,000 messages of 200 KB).
SPILL_LIMIT = 1 << 30


@dataclass(frozen=True)
class _Spilled:
    """A frame in the spill file: its pieces then its attachments' bytes, from ``offset``."""

    rebuilt: bool
    offset: int
    pieces: tuple[int, ...]
    data: tuple[int, ...] | None  # None: the frame kept no attachments' bytes


class Frames:
    """Frames by key (a session's token, folder, item index), each taken once."""

    def __init__(self, limit: int = FRAMES_LIMIT, spill: int = SPILL_LIMIT) -> None:
        self.limit, self.spill = limit, spill
        self._kept: OrderedDict[Hashable, Frame | _Spilled] = OrderedDict()
        self._memory: OrderedDict[Hashable, None] = OrderedDict()  # the keys of those in memory
        self._bytes = 0  # of the frames in memory
        self._file: IO[bytes] | None = None
        self._end = 0  # bytes written to the spill file since it was last emptied
        self._spilled = 0  # frames in the spill file, not yet taken or dropped
        self._lock = threading.Lock()

    def keep(self, key: Hashable, frame: Frame) -> None:
        with self._lock:
            self._drop(key)
            self._kept[key] = frame
            self._memory[key] = None
            self._bytes += frame.size
            self._shed()

    def take(self, key: Hashable) -> Frame | None:
        """The frame kept under ``key``, once; None when there is none (or it cannot be read
        back: the message is built the long way)."""
        with self._lock:
            found = self._kept.get(key)
            try:
                frame = self._read(found) if isinstance(found, _Spilled) else found
            except OSError:
                frame = None
            self._drop(key)
            return frame

    def forget(self, owner: object) -> None:
        """Drop the frames of one session (keys that start with ``owner``)."""
        with self._lock:
            for key in [k for k in self._kept if isinstance(k, tuple) and k[0] == owner]:
                self._drop(key)

    def __len__(self) -> int:
        return len(self._kept)

    @property
    def spilled(self) -> int:
        return self._spilled

    def _shed(self) -> None:
        """The oldest frames in memory to the spill file, or dropped, until under the limit."""
        while self._bytes > self.limit:
            key, _ = self._memory.popitem(last=False)
            frame = cast("Frame", self._kept[key])  # its key is in ``_memory``: not spilled
            self._bytes -= frame.size
            spilled = self._write(frame)
            if spilled is None:
                del self._kept[key]
            else:
                self._kept[key] = spilled

    def _write(self, frame: Frame) -> _Spilled | None:
        data = frame.data or ()
        blob = b"".join((*frame.pieces, *data))
        if self._end + len(blob) > self.spill:
            return None
        try:
            if self._file is None:
                # Unlinked at once: nothing is left behind, even by a process killed.
                self._file = tempfile.TemporaryFile(prefix="mailferry-pst-frames-")  # noqa: SIM115
                weakref.finalize(self, self._file.close)
                found = os.fstatvfs(self._file.fileno())
                self.spill = min(self.spill, found.f_bavail * found.f_frsize // 4)
            if self._end + len(blob) > self.spill:
                return None
            os.pwrite(self._file.fileno(), blob, self._end)
        except OSError as exc:  # a full or unwritable temporary directory: spill no more
            log.warning("pst.frames_not_spilled", reason=exc.strerror or str(exc))
            self.spill = 0
            return None
        lengths = tuple(map(len, frame.pieces))
        kept = None if frame.data is None else tuple(map(len, data))
        spilled = _Spilled(frame.rebuilt, self._end, lengths, kept)
        self._end += len(blob)
        self._spilled += 1
        return spilled

    def _read(self, spilled: _Spilled) -> Frame:
        if self._file is None:
            raise RuntimeError("a frame spilled without a spill file")
        lengths = (*spilled.pieces, *(spilled.data or ()))
        blob = os.pread(self._file.fileno(), sum(lengths), spilled.offset)
        parts, at = [], 0
        for length in lengths:
            parts.append(blob[at : at + length])
            at += length
        count = len(spilled.pieces)
        data = None if spilled.data is None else tuple(parts[count:])
        return Frame(tuple(parts[:count]), spilled.rebuilt, data)

    def _drop(self, key: Hashable) -> None:
        frame = self._kept.pop(key, None)
        if isinstance(frame, _Spilled):
            self._spilled -= 1
            if self._spilled == 0:
                self._empty()
        elif frame is not None:
            self._bytes -= frame.size
            del self._memory[key]

    def _empty(self) -> None:
        if self._file is not None and self._end:
            self._file.truncate(0)
        self._end = 0


SHARED = Frames()
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


@functools.cache
def return_freed_buffers() -> bool:
    """Have the C library map buffers of 1 MiB and more apart, and unmap them when freed.

    glibc raises its mmap threshold whenever a mapped block is freed, after which big buffers
    come from per-thread arenas and stay there once freed: the read-ahead threads' attachment
    buffers held 15-25 MB of RSS that nothing used (a 1.3 GB PST: 147 → 122-132 MB peak).
    Once per process; False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 20))
    except (OSError, AttributeError):
        return False
