"""Grow a Unicode PST for the archive benchmark: every message of it, N times over.

No PST writer is available here and no big PST may be shipped, so the archive benchmark (issue #18
rule 5: a big PST at 80 % of the IMAP target's speed, memory flat) grows a small one, following
[MS-PST] (section numbers below):
- each copy of a message is a new node (2.2.2.7.7.4 NBTENTRY) with a new NID under the same
  folder, sharing the original's data block and subnode tree (a block may belong to several
  nodes: 2.2.2.7.7.3 BBTENTRY.cRef). A reader reads, checks and decodes every block of every copy
  again, as for a file of N times the messages;
- each folder with messages gets a new contents table (2.3.4 Table Context) listing originals and
  copies, with the two columns every contents table has (PidTagLtpRowId, PidTagLtpRowVer): a
  heap (2.3.1) holding the TCINFO and the row index (2.3.2 BTH, levels as needed) and a row
  matrix in a subnode (2.2.2.8.3.3 SLBLOCK, 2.2.2.8.3.2 XBLOCK). Data blocks are encoded as the
  file says (5.1 NDB_CRYPT_PERMUTE; cyclic is refused);
- the node and block B-trees (2.2.2.7.7) are written anew, everything appended at the end of the
  file clear of allocation map places, and the header (2.2.2.6) is pointed at them with
  fAMapValid cleared: the allocation map does not know the new space.

    python3 benchmarks/pstgrow.py SOURCE.pst GROWN.pst --copies 80
    python3 benchmarks/pstgrow.py SOURCE.pst GROWN.pst --copies 2 --attachment-bytes 9000000

``--attachment-bytes N`` first gives every attachment by value N bytes of data of its own (seeded
by its NIDs), in as many full data blocks as it takes under an XBLOCK, or XXBLOCK past 1,021
blocks (2.2.2.8.3.2), and puts each message's subnodes under an SIBLOCK (2.2.2.8.3.3.2): shapes
of big mail the small source files do not have, for mailferry's own reader (``pstnodes``).

The copies are byte-identical messages (mailferry copies each). Checked by reading grown files
with libpff and with readpst (libpst), which count and read every copy
(`tests/unit/test_pstgrow.py`).
"""

from __future__ import annotations

import argparse
import random
import shutil
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple, TypeVar

from mailferry.adapters.files import pstnodes
from mailferry.adapters.files.pstnodes import PERMUTE, crc

T = TypeVar("T")
PAGE, PAGE_DATA, BLOCK_DATA, ALLOC_MAX = 512, 488, 8176, 3580
BBT_PAGE, NBT_PAGE = 0x80, 0x81
NORMAL_FOLDER, NORMAL_MESSAGE, CONTENTS_TABLE = 0x02, 0x04, 0x0E
AMAP_FIRST, AMAP_EVERY = 0x4400, 496 * 8 * 64
NBT_LEAF = struct.Struct("<QQQII")  # nid (8 bytes in Unicode), bidData, bidSub, nidParent, pad
BBT_LEAF = struct.Struct("<QQHHI")  # BREF (bid, ib), cb, cRef, pad
BRANCH = struct.Struct("<QQQ")  # btkey, BREF (bid, ib)
ROW = struct.Struct("<IIB")  # PidTagLtpRowId, PidTagLtpRowVer, cell existence bitmap
ROWS_NID = 1 << 5 | 0x1F  # the row matrix's subnode (NID_TYPE_LTP)
XBLOCK_MAX, SLBLOCK_MAX = (BLOCK_DATA - 8) // 8, (BLOCK_DATA - 8) // 24
ATTACHMENT = 0x05  # NID_TYPE_ATTACHMENT


class Node(NamedTuple):
    nid: int
    data: int
    sub: int
    parent: int


class Block(NamedTuple):
    bid: int
    ib: int
    cb: int
    refs: int


def signature(ib: int, bid: int) -> int:
    """[MS-PST] 5.5 ComputeSig."""
    mixed = ib ^ bid
    return ((mixed >> 16) ^ mixed) & 0xFFFF


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    return (items[i : i + size] for i in range(0, len(items), size))


def read_tree(file: BinaryIO, ib: int, ptype: int, leaf: struct.Struct) -> list[tuple[int, ...]]:
    file.seek(ib)
    page = file.read(PAGE)
    if page[496] != ptype:
        raise ValueError(f"not a B-tree page of type {ptype:#x} at {ib}")
    count, _, size, level = page[488:492]
    if level == 0:
        return [leaf.unpack_from(page, i * size) for i in range(count)]
    rows: list[tuple[int, ...]] = []
    for i in range(count):
        rows.extend(read_tree(file, BRANCH.unpack_from(page, i * size)[2], ptype, leaf))
    return rows


def heap_header(index: int, ib_hnpm: int, root: int) -> bytes:
    """HNHDR for the first block, HNBITMAPHDR for the 9th and every 128th after, else
    HNPAGEHDR ([MS-PST] 2.3.1.2-2.3.1.4); fill levels left 0 (no free space noted)."""
    if index == 0:
        return struct.pack("<HBBII", ib_hnpm, 0xEC, 0x7C, root, 0)
    if index % 128 == 8:
        return struct.pack("<H", ib_hnpm) + bytes(64)
    return struct.pack("<H", ib_hnpm)


class Heap:
    """A heap on node ([MS-PST] 2.3.1), allocations in order, a block filled before the next."""

    def __init__(self) -> None:
        self.blocks: list[list[bytes]] = [[]]

    def alloc(self, data: bytes) -> int:
        if len(data) > ALLOC_MAX or len(data) % 2:
            raise ValueError("a heap allocation is even and at most 3,580 bytes")
        if self._size(len(self.blocks) - 1, [*self.blocks[-1], data]) > BLOCK_DATA:
            self.blocks.append([])
        self.blocks[-1].append(data)
        return (len(self.blocks) - 1) << 16 | len(self.blocks[-1]) << 5

    @staticmethod
    def _size(index: int, allocs: list[bytes]) -> int:
        return len(heap_header(index, 0, 0)) + sum(map(len, allocs)) + 4 + 2 * (len(allocs) + 1)

    def build(self, root: int) -> list[bytes]:
        built = []
        for index, allocs in enumerate(self.blocks):
            offsets = [len(heap_header(index, 0, 0))]
            for data in allocs:
                offsets.append(offsets[-1] + len(data))
            head = heap_header(index, offsets[-1], root)
            pagemap = struct.pack(f"<HH{len(offsets)}H", len(allocs), 0, *offsets)
            built.append(head + b"".join(allocs) + pagemap)
        return built


def contents_table(rowids: list[int]) -> tuple[list[bytes], bytes]:
    """A contents table's heap blocks and row matrix for these messages."""
    heap = Heap()
    per = ALLOC_MAX // 8
    index = sorted((rowid, i) for i, rowid in enumerate(rowids))
    level: list[tuple[int, int]] = [
        (chunk[0][0], heap.alloc(b"".join(struct.pack("<II", *r) for r in chunk)))
        for chunk in chunks(index, per)
    ]
    depth = 0
    while len(level) > 1:
        level = [
            (chunk[0][0], heap.alloc(b"".join(struct.pack("<II", *r) for r in chunk)))
            for chunk in chunks(level, per)
        ]
        depth += 1
    row_index = heap.alloc(struct.pack("<BBBBI", 0xB5, 4, 4, depth, level[0][1]))
    info = struct.pack("<BBHHHHIII", 0x7C, 2, 8, 8, 8, 9, row_index, ROWS_NID, 0)
    info += struct.pack("<IHBB", 0x67F20003, 0, 4, 0) + struct.pack("<IHBB", 0x67F30003, 4, 4, 1)
    rows = b"".join(ROW.pack(rowid, 1, 0xC0) for rowid in rowids)
    return heap.build(heap.alloc(info)), rows


class Appender:
    """Writes blocks and pages at the end of the file, clear of allocation map pages."""

    def __init__(
        self, file: BinaryIO, eof: int, next_page: int, next_block: int, crypt: int
    ) -> None:
        if crypt not in (0, 1):
            raise ValueError("only unencoded and permute-encoded PSTs can be grown")
        self.file, self.ib, self.page_bid, self.block_bid = file, eof, next_page, next_block
        self.encode = crypt == 1
        self.blocks: list[Block] = []

    def _place(self, size: int, align: int) -> int:
        ib = -(-self.ib // align) * align
        amap = AMAP_FIRST + max(0, (ib + size - 1 - AMAP_FIRST) // AMAP_EVERY) * AMAP_EVERY
        if ib < amap + PAGE and amap < ib + size:
            ib = -(-(amap + PAGE) // align) * align
        self.ib = ib + size
        return ib

    def block(self, data: bytes, internal: bool = False) -> int:
        bid = self.block_bid | (2 if internal else 0)
        self.block_bid += 4
        stored = data.translate(PERMUTE) if self.encode and not internal else data
        size = -(-(len(stored) + 16) // 64) * 64
        ib = self._place(size, 64)
        trailer = struct.pack("<HHIQ", len(stored), signature(ib, bid), crc(stored), bid)
        self.file.seek(ib)
        self.file.write(stored.ljust(size - 16, b"\0") + trailer)
        self.blocks.append(Block(bid, ib, len(stored), 2))
        return bid

    def stream(self, pieces: Sequence[bytes]) -> int:
        """Data blocks of one stream, under an XBLOCK when more than one, under an XXBLOCK of
        XBLOCKs past what one XBLOCK holds."""
        bids = [self.block(piece) for piece in pieces]
        if len(bids) == 1:
            return bids[0]
        sizes = [len(piece) for piece in pieces]
        if len(bids) <= XBLOCK_MAX:
            return self._xblock(1, bids, sum(sizes))
        tops = [
            self._xblock(1, bids[i : i + XBLOCK_MAX], sum(sizes[i : i + XBLOCK_MAX]))
            for i in range(0, len(bids), XBLOCK_MAX)
        ]
        return self._xblock(2, tops, sum(sizes))

    def _xblock(self, level: int, bids: list[int], total: int) -> int:
        data = struct.pack(f"<BBHI{len(bids)}Q", 1, level, len(bids), total, *bids)
        return self.block(data, internal=True)

    def subnodes(self, entries: dict[int, tuple[int, int]], *, split: bool = False) -> int:
        """A subnode tree: one SLBLOCK, or SLBLOCKs under an SIBLOCK when they do not fit in one
        (or ``split``: two, for a reader to meet an SIBLOCK)."""
        rows = sorted(entries.items())
        size = -(-len(rows) // 2) if split and len(rows) > 1 else SLBLOCK_MAX
        leaves = [
            (
                chunk[0][0],
                self.block(
                    struct.pack("<BBHI", 2, 0, len(chunk), 0)
                    + b"".join(struct.pack("<QQQ", nid, *refs) for nid, refs in chunk),
                    internal=True,
                ),
            )
            for chunk in chunks(rows, size)
        ]
        if len(leaves) == 1:
            return leaves[0][1]
        body = b"".join(struct.pack("<QQ", nid, bid) for nid, bid in leaves)
        return self.block(struct.pack("<BBHI", 2, 1, len(leaves), 0) + body, internal=True)

    def page(self, entries: list[bytes], size: int, level: int, ptype: int) -> tuple[int, int]:
        ib, bid = self._place(PAGE, PAGE), self.page_bid
        self.page_bid += 1
        body = b"".join(entries).ljust(PAGE_DATA, b"\0")
        body += bytes([len(entries), PAGE_DATA // size, size, level]) + b"\0" * 4
        trailer = struct.pack("<BBHIQ", ptype, ptype, signature(ib, bid), crc(body), bid)
        self.file.seek(ib)
        self.file.write(body + trailer)
        return bid, ib

    def tree(self, rows: list[tuple[int, ...]], leaf: struct.Struct, ptype: int) -> tuple[int, int]:
        level = [
            (chunk[0][0], self.page([leaf.pack(*r) for r in chunk], leaf.size, 0, ptype))
            for chunk in chunks(rows, PAGE_DATA // leaf.size)
        ]
        depth = 1
        while len(level) > 1:
            level = [
                (
                    chunk[0][0],
                    self.page(
                        [BRANCH.pack(k, *ref) for k, ref in chunk], BRANCH.size, depth, ptype
                    ),
                )
                for chunk in chunks(level, PAGE_DATA // BRANCH.size)
            ]
            depth += 1
        return level[0][1]


def grow(nodes: list[Node], copies: int, out: Appender) -> list[Node]:
    """The nodes with every message there `copies` times and the contents tables to list them."""
    index = max(n.nid >> 5 for n in nodes) + 1
    grown = {n.nid: n for n in nodes}
    by_folder: dict[int, list[int]] = {}
    for message in (n for n in nodes if n.nid & 0x1F == NORMAL_MESSAGE):
        by_folder.setdefault(message.parent, []).append(message.nid)
    for folder, originals in sorted(by_folder.items()):
        rowids = list(originals)
        for _ in range(copies - 1):
            for nid in originals:
                copy = index << 5 | NORMAL_MESSAGE
                grown[copy] = grown[nid]._replace(nid=copy)
                rowids.append(copy)
                index += 1
        table = (folder & ~0x1F) | CONTENTS_TABLE
        heap, rows = contents_table(rowids)
        per_block = BLOCK_DATA // ROW.size * ROW.size  # rows do not cross blocks
        matrix = out.stream([bytes(c) for c in chunks(rows, per_block)])
        sub = out.block(struct.pack("<BBHIQQQ", 2, 0, 1, 0, ROWS_NID, matrix, 0), internal=True)
        grown[table] = grown[table]._replace(data=out.stream(heap), sub=sub)
    return sorted(grown.values())


def enlarge(path: Path, nodes: list[Node], size: int, out: Appender) -> list[Node]:
    """Every attachment by value with ``size`` bytes of its own (see the module's docstring)."""
    reader = pstnodes.Nodes.open(path)
    if reader is None:
        raise ValueError(f"{path}: not a PST pstnodes reads")
    try:
        return [_enlarged(reader, node, size, out) for node in nodes]
    finally:
        reader.close()


def _enlarged(reader: pstnodes.Nodes, node: Node, size: int, out: Appender) -> Node:
    if node.nid & 0x1F != NORMAL_MESSAGE or not node.sub:
        return node
    subs = reader.subnodes(node.sub)
    for nid, (data, sub) in sorted(subs.items()):
        if nid & 0x1F != ATTACHMENT:
            continue
        value = pstnodes.properties(reader.heap((data, sub))).get(pstnodes.ATTACH_DATA)
        if value is None or value[0] != pstnodes.BINARY or not value[1] & 0x1F:
            continue
        inner = reader.subnodes(sub)
        content = random.Random(node.nid << 32 | nid).randbytes(size)
        inner[value[1]] = (out.stream(list(chunks(content, BLOCK_DATA))), inner[value[1]][1])
        subs[nid] = (data, out.subnodes(inner))
    return node._replace(sub=out.subnodes(subs, split=True))


def rewrite(path: Path, copies: int, attachment_bytes: int | None = None) -> int:
    with path.open("r+b") as file:
        header = bytearray(file.read(564))
        if header[:4] != b"!BDN" or struct.unpack_from("<H", header, 10)[0] != 23:
            raise ValueError(f"{path}: not a Unicode PST with 512-byte pages")
        (eof,), (next_page,), (next_block,) = (
            struct.unpack_from("<Q", header, o) for o in (184, 32, 516)
        )
        nbt_ib, bbt_ib = (
            struct.unpack_from("<Q", header, 224)[0],
            struct.unpack_from("<Q", header, 240)[0],
        )
        nodes = [Node(*row[:4]) for row in read_tree(file, nbt_ib, NBT_PAGE, NBT_LEAF)]
        blocks = [Block(*row[:4]) for row in read_tree(file, bbt_ib, BBT_PAGE, BBT_LEAF)]
        out = Appender(file, eof, next_page, next_block, header[513])
        if attachment_bytes is not None:
            nodes = enlarge(path, nodes, attachment_bytes, out)
        nodes = grow(nodes, copies, out)
        bbt = out.tree([(*b, 0) for b in sorted(blocks + out.blocks)], BBT_LEAF, BBT_PAGE)
        nbt = out.tree([(*n, 0) for n in nodes], NBT_LEAF, NBT_PAGE)
        struct.pack_into("<Q", header, 32, out.page_bid)
        struct.pack_into("<Q", header, 516, out.block_bid)
        struct.pack_into("<Q", header, 184, out.ib)
        struct.pack_into("<QQ", header, 216, *nbt)
        struct.pack_into("<QQ", header, 232, *bbt)
        header[248] = 0  # fAMapValid: INVALID_AMAP
        struct.pack_into("<I", header, 4, crc(bytes(header[8 : 8 + 471])))
        struct.pack_into("<I", header, 524, crc(bytes(header[8 : 8 + 516])))
        file.seek(0)
        file.write(header)
        file.truncate(out.ib)
    return sum(1 for n in nodes if n.nid & 0x1F == NORMAL_MESSAGE)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--copies", type=int, default=10, help="times each message is there")
    parser.add_argument("--attachment-bytes", type=int, help="each attachment's data, new")
    args = parser.parse_args()
    shutil.copyfile(args.source, args.target)
    messages = rewrite(args.target, args.copies, args.attachment_bytes)
    print(f"{args.target}: {messages} message nodes, {args.target.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
