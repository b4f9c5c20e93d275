"""A Unicode PST's attachments read without libpff, by [MS-PST] (section numbers below).

libpff reads an attachment's data whenever the attachment is opened, even to learn its name,
at ~100 MB/s (its CRC and decoding were most of a PST copy's time): measuring a message for
planning read every attachment, and copying it read them again. Here the node and block B-trees
(2.2.2.7.7), data trees (2.2.2.8.3.2 XBLOCK/XXBLOCK), subnode trees (2.2.2.8.3.3), the heap on
node (2.3.1), BTH (2.3.2) and property and table contexts (2.3.3, 2.3.4) are read straight from
the file: an attachment's name, MIME tag and size come from its property context without its
data, which is read once, when the message is copied, block by block (each block's CRC checked,
5.3, and its NDB_CRYPT_PERMUTE encoding undone, 5.1, at memory speed). A folder's messages are
listed from its contents table the same way (``contents``).

Only what is plain is read here: a Unicode PST (wVer 23) with no or permutative encoding, and
attachments by value (PidTagAttachMethod 1) with Unicode names. Anything else (an ANSI PST, cyclic
encoding, an embedded message, a PtypString8 name, a structure that does not check out) is
answered None, and the caller reads that message through libpff as before: what libpff reads,
and how it fails, stays the reference. A data block that fails its CRC raises OSError, as libpff
does, and the message is reported damaged.
"""

from __future__ import annotations

import bisect
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

PAGE, PAGE_DATA, TRAILER = 512, 488, 16
BBT_PAGE, NBT_PAGE = 0x80, 0x81
NBT_LEAF = struct.Struct("<QQQII")  # nid, bidData, bidSub, nidParent, padding
BBT_LEAF = struct.Struct("<QQHHI")  # BREF (bid, ib), cb, cRef, padding
BRANCH = struct.Struct("<QQQ")  # btkey, BREF (bid, ib)
BLOCK_TRAILER = struct.Struct("<HHIQ")  # cb, wSig, dwCRC, bid
INTERNAL = 0x2  # a BID's bit for blocks of the NDB's own structures (never encoded)
ATTACHMENT_TABLE = 0x671  # NID_ATTACHMENT_TABLE, in a message's subnodes
CONTENTS_TABLE = 0x0E  # NID_TYPE_CONTENTS_TABLE: a folder's NID with this type
BY_VALUE = 1  # PidTagAttachMethod: afByValue
ATTACH_DATA, ATTACH_METHOD = 0x3701, 0x3705
ATTACH_FILENAME, ATTACH_LONG_FILENAME, ATTACH_MIME_TAG = 0x3704, 0x3707, 0x370E
BINARY, UNICODE, INTEGER32 = 0x0102, 0x001F, 0x0003
MAX_LEVELS = 8  # of a B-tree or BTH: deeper is damage, not a big file
RECORDS_READ = 1 << 16  # of one BTH, at most (a property context has a few hundred)
PAGES_KEPT = 4096  # B-tree pages cached per file (2 MiB): the upper levels are read once

# [MS-PST] 5.1 mpbbCrypt, its first 256 bytes: the NDB_CRYPT_PERMUTE encoding of a data block.
PERMUTE = bytes.fromhex(
    "41361362a8216ebbf416cc047f64e85d1ef2cb2a74c55e35d295479e962d9a88"
    "4c7d843fdbac31b6485ff6c4d8398be7233b388ec8c1df25b120a546604e9cfb"
    "aad35651457c550007c92b9d859b09a08fadb30f63ab894bd7a7155a716642bf"
    "264a6b98faea7753b270052cfd593a867ece06eb827857c78d43afb41cd45bcd"
    "e2e9274fc3087280cfb0eff5286dbe304d3492d50e3c2232e5e4f99fc2d10a81"
    "12e1ee918376e397e6618a1779a4b7dc907a5c8c02a6ca69de501a1193b95287"
    "58fced1d37491b6ae0293399bd6cd994f340546ff0c673b8d63e6518441fdd67"
    "10f10c19ecae03a1147ba90bfff8a3c0a201f72ebc2468750dfeba2fb5d0da3d"
)
UNPERMUTE = bytes(PERMUTE.index(n) for n in range(256))


_Page = tuple[int, list[int], list[Any]]  # level, keys, rows or child pages


class NotPlainError(Exception):
    """Not read here (the caller asks libpff): a structure this reader does not take."""


def crc(data: bytes) -> int:
    """[MS-PST] 5.3: CRC-32 with initial value 0 and no final inversion."""
    return zlib.crc32(data, 0xFFFFFFFF) ^ 0xFFFFFFFF


@dataclass(frozen=True)
class Blob:
    """An attachment's data, read when asked (``read``); ``size`` known without reading it."""

    nodes: Nodes
    bid: int  # its data tree; 0: ``kept`` is the data (an allocation in the heap)
    size: int
    kept: bytes = b""

    def read(self) -> bytes:
        data = b"".join(self.nodes.data(self.bid)) if self.bid else self.kept
        if len(data) != self.size:
            raise OSError(f"attachment data of {len(data)} bytes, its tree says {self.size}")
        return data


@dataclass(frozen=True)
class Stored:
    """One attachment as its property context says: names, MIME tag, data."""

    long_name: str | None
    name: str | None
    mime_tag: str | None
    blob: Blob


class Nodes:
    """One PST file open for reading its nodes (``open``: None when it is not one read here).
    Reads are ``os.pread`` on one descriptor: threads may share it."""

    def __init__(self, fd: int, nbt: int, bbt: int, permuted: bool) -> None:
        self._fd, self._nbt, self._bbt, self._permuted = fd, nbt, bbt, permuted
        self._pages: dict[int, _Page] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> Nodes | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            header = os.pread(fd, 564, 0)
        except OSError:
            header = b""
        crypt = header[513] if len(header) == 564 else -1
        if crypt not in (0, 1) or header[:4] != b"!BDN" or header[10:12] != b"\x17\x00":  # wVer 23
            os.close(fd)
            return None
        nbt, bbt = (struct.unpack_from("<Q", header, at)[0] for at in (224, 240))
        return cls(fd, nbt, bbt, crypt == 1)

    def close(self) -> None:
        os.close(self._fd)

    def contents(self, folder: int) -> list[int] | None:
        """The NIDs of folder ``folder``'s messages in its contents table's order (libpff's
        order of a folder's items), from the table alone: without opening every item, which
        was most of listing a big folder through libpff. None: ask libpff."""
        try:
            node = self._node((folder & ~0x1F) | CONTENTS_TABLE)
            return _row_ids(self.heap(node), self, node)
        except (NotPlainError, KeyError, IndexError, struct.error):
            return None

    # -- attachments ------------------------------------------------------------------------
    def attachments(self, nid: int) -> list[Stored] | None:
        """Message ``nid``'s attachments in its attachment table's order, or None when one of
        them (or the message) is not plain (``NotPlainError``, see the module's docstring)."""
        try:
            node = self._node(nid)
            subs = self.subnodes(node[1])
            if ATTACHMENT_TABLE not in subs:
                return []
            table = subs[ATTACHMENT_TABLE]
            rows = _row_ids(self.heap(table), self, table)
            return [self._attachment(subs[row]) for row in rows]
        except (NotPlainError, KeyError, IndexError, struct.error):
            return None

    def _attachment(self, node: tuple[int, int]) -> Stored:
        heap = self.heap(node)
        props = properties(heap)
        method = props.get(ATTACH_METHOD)
        data = props.get(ATTACH_DATA)
        if method is None or method[0] != INTEGER32 or method[1] != BY_VALUE:
            raise NotPlainError("not an attachment by value")
        if data is None or data[0] != BINARY:
            raise NotPlainError("no binary data")
        return Stored(
            _text(heap, props.get(ATTACH_LONG_FILENAME)),
            _text(heap, props.get(ATTACH_FILENAME)),
            _text(heap, props.get(ATTACH_MIME_TAG)),
            self._blob(heap, node, data[1]),
        )

    def _blob(self, heap: Heap, node: tuple[int, int], hnid: int) -> Blob:
        if hnid & 0x1F == 0:  # small data, in the heap (read with it)
            kept = heap.get(hnid) if hnid else b""
            return Blob(self, 0, len(kept), kept)
        bid = self.subnodes(node[1])[hnid][0]
        return Blob(self, bid, self._size(bid))

    # -- NDB: B-trees, blocks, data and subnode trees ---------------------------------------
    def _node(self, nid: int) -> tuple[int, int]:
        found = self._find(self._nbt, nid, NBT_PAGE, NBT_LEAF)
        return found[1], found[2]

    def _find(self, ib: int, key: int, ptype: int, leaf: struct.Struct) -> tuple[int, ...]:
        for _ in range(MAX_LEVELS):
            level, keys, values = self._page(ib, ptype, leaf)
            at = bisect.bisect_right(keys, key) - 1
            if at < 0 or (level == 0 and keys[at] != key):
                raise NotPlainError(f"no B-tree entry {key:#x}")
            if level == 0:
                return cast("tuple[int, ...]", values[at])
            ib = cast("int", values[at])
        raise NotPlainError("B-tree too deep")

    def _page(self, ib: int, ptype: int, leaf: struct.Struct) -> _Page:
        """A B-tree page (2.2.2.7.7) as its level, its keys and their rows (a leaf's) or child
        pages (a branch's); checked (type, CRC) when read, then kept."""
        found = self._pages.get(ib)
        if found is not None:
            return found
        page = os.pread(self._fd, PAGE, ib)
        if len(page) != PAGE or page[496] != ptype or page[497] != ptype:
            raise NotPlainError(f"not a B-tree page at {ib}")
        if struct.unpack_from("<I", page, 500)[0] != crc(page[:496]):
            raise NotPlainError(f"B-tree page at {ib} fails its CRC")
        count, _, size, level = page[488:492]
        shape = leaf if level == 0 else BRANCH
        rows = [shape.unpack_from(page, i * size) for i in range(count)]
        values: list[Any] = rows if level == 0 else [row[2] for row in rows]
        found = (level, [row[0] for row in rows], values)
        with self._lock:
            if len(self._pages) >= PAGES_KEPT:
                self._pages.clear()
            self._pages[ib] = found
        return found

    def _block(self, bid: int) -> bytes:
        _, ib, cb, _, _ = self._find(self._bbt, bid & ~1, BBT_PAGE, BBT_LEAF)
        size = (cb + TRAILER + 63) & ~63
        raw = os.pread(self._fd, size, ib)
        if len(raw) != size:
            raise OSError(f"block {bid:#x} cut short at {ib}")
        tcb, _, tcrc, tbid = BLOCK_TRAILER.unpack_from(raw, size - TRAILER)
        data = raw[:cb]
        if tcb != cb or tbid & ~1 != bid & ~1 or tcrc != crc(data):
            raise OSError(f"block {bid:#x} at {ib} fails its check (CRC or trailer)")
        if self._permuted and not bid & INTERNAL:
            return data.translate(UNPERMUTE)
        return data

    def _size(self, bid: int) -> int:
        if not bid & INTERNAL:
            return int(self._find(self._bbt, bid & ~1, BBT_PAGE, BBT_LEAF)[2])
        block = self._block(bid)
        if block[0] != 0x01:
            raise NotPlainError(f"block {bid:#x} is not a data tree")
        return int(struct.unpack_from("<I", block, 4)[0])

    def data(self, bid: int, levels: tuple[int, ...] = (1, 2)) -> Iterator[bytes]:
        """The data blocks of the data tree at ``bid``, in order (an XXBLOCK's children are
        XBLOCKs, an XBLOCK's data blocks: a damaged tree cannot loop)."""
        if not bid & INTERNAL:
            yield self._block(bid)
            return
        block = self._block(bid)
        btype, level, count = struct.unpack_from("<BBH", block)
        if btype != 0x01 or level not in levels:
            raise OSError(f"block {bid:#x} is not a data tree")
        for child in struct.unpack_from(f"<{count}Q", block, 8):
            yield from self.data(child, (1,)) if level == 2 else (self._block(child),)

    def subnodes(self, bid: int, levels: tuple[int, ...] = (0, 1)) -> dict[int, tuple[int, int]]:
        """The subnode tree at ``bid``: NID -> (data BID, subnode BID) (an SIBLOCK's children
        are SLBLOCKs)."""
        found: dict[int, tuple[int, int]] = {}
        if bid == 0:
            return found
        block = self._block(bid)
        btype, level, count = struct.unpack_from("<BBH", block)
        if btype != 0x02 or level not in levels:
            raise NotPlainError(f"block {bid:#x} is not a subnode tree")
        for i in range(count):
            if level == 0:
                nid, data, sub = struct.unpack_from("<QQQ", block, 8 + 24 * i)
                found[nid & 0xFFFFFFFF] = (data, sub)
            else:
                found.update(self.subnodes(struct.unpack_from("<QQ", block, 8 + 16 * i)[1], (0,)))
        return found

    def heap(self, node: tuple[int, int]) -> Heap:
        return Heap(list(self.data(node[0])))


class Heap:
    """A heap on node (2.3.1): allocations by HID."""

    def __init__(self, blocks: list[bytes]) -> None:
        if not blocks or blocks[0][2] != 0xEC:
            raise NotPlainError("not a heap on node")
        self.blocks = blocks
        self.client, self.root = blocks[0][3], struct.unpack_from("<I", blocks[0], 4)[0]

    def get(self, hid: int) -> bytes:
        if hid & 0x1F:
            raise NotPlainError(f"{hid:#x} is not a HID")
        index, block = (hid >> 5) & 0x7FF, self.blocks[hid >> 16]
        at = struct.unpack_from("<H", block)[0]
        count = struct.unpack_from("<H", block, at)[0]
        if not 1 <= index <= count:
            raise NotPlainError(f"no allocation {hid:#x}")
        start, end = struct.unpack_from("<HH", block, at + 4 + 2 * (index - 1))
        return block[start:end]

    def bth(self, hid: int) -> Iterator[tuple[bytes, bytes]]:
        """A BTH's records (2.3.2) as (key, data), in key order."""
        header = self.get(hid)
        kind, key, data, levels, root = struct.unpack_from("<BBBBI", header)
        if kind != 0xB5 or levels > MAX_LEVELS:
            raise NotPlainError("not a BTH")
        yield from self._records(root, key, data, levels, [RECORDS_READ]) if root else ()

    def _records(
        self, hid: int, key: int, data: int, level: int, budget: list[int]
    ) -> Iterator[tuple[bytes, bytes]]:
        records = self.get(hid)
        width = key + (4 if level else data)
        budget[0] -= 1 + len(records) // max(width, 1)  # a damaged BTH may point back on itself
        if budget[0] < 0 or width == 0:
            raise NotPlainError("a BTH past any real one's size")
        for at in range(0, len(records) - width + 1, width):
            if level:
                child = struct.unpack_from("<I", records, at + key)[0]
                yield from self._records(child, key, data, level - 1, budget)
            else:
                yield records[at : at + key], records[at + key : at + width]


def properties(heap: Heap) -> dict[int, tuple[int, int]]:
    """A property context (2.3.3): property ID -> (type, inline value or HNID)."""
    if heap.client != 0xBC:
        raise NotPlainError("not a property context")
    found = {}
    for key, data in heap.bth(heap.root):
        kind, value = struct.unpack("<HI", data)
        found[struct.unpack("<H", key)[0]] = (kind, value)
    return found


def _text(heap: Heap, prop: tuple[int, int] | None) -> str | None:
    """A PtypString property, as libpff gives it (trailing NULs dropped, empty is None)."""
    if prop is None:
        return None
    if prop[0] != UNICODE or prop[1] & 0x1F:
        raise NotPlainError("not a Unicode string in the heap")
    try:
        value = heap.get(prop[1]).decode("utf-16-le") if prop[1] else ""
    except UnicodeDecodeError:
        raise NotPlainError("not UTF-16") from None
    return value.rstrip("\x00") or None


def _row_ids(heap: Heap, nodes: Nodes, node: tuple[int, int]) -> list[int]:
    """A table context's row IDs (2.3.4) in its row matrix's order."""
    if heap.client != 0x7C:
        raise NotPlainError("not a table context")
    info = heap.get(heap.root)
    width = struct.unpack_from("<H", info, 8)[0]  # rgib[TCI_bm]: a row's bytes
    rows = struct.unpack_from("<I", info, 14)[0]  # hnidRows
    if width < 4:  # a row starts with its 4-byte ID (PidTagLtpRowId)
        raise NotPlainError("not a table's row width")
    if rows == 0:
        return []
    if rows & 0x1F == 0:
        blocks = [heap.get(rows)]
    else:
        blocks = list(nodes.data(nodes.subnodes(node[1])[rows][0]))
    found: list[int] = []
    for block in blocks:
        per_block = len(block) // width
        found.extend(struct.unpack_from("<I", block, i * width)[0] for i in range(per_block))
    return found
