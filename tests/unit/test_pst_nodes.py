"""Attachments read without libpff (``pstnodes``), libpff the oracle: on outlook.pst, and on it
grown by benchmarks/pstgrow.py with attachments of its own sizes (one data block; an XBLOCK; an
XXBLOCK past 1,021 blocks) and every message's subnodes under an SIBLOCK, structures the shipped
file does not have. Every file here is permute-encoded ([MS-PST] 5.1), as Outlook writes them."""

from __future__ import annotations

import lzma
import shutil
import struct
from pathlib import Path
from typing import Any

import pypff
import pytest

from mailferry.adapters.files import pstmail, pstnodes
from mailferry.adapters.files.pst import PstAccount
from mailferry.domain.errors import MessageError
from tests.unit.pstfiles import OST, PST, pstgrow

XXBLOCK_BYTES = 1022 * 8176  # one block more than an XBLOCK holds


def enlarged(tmp_path: Path, size: int | None, copies: int = 2) -> Path:
    target = tmp_path / f"enlarged-{size}.pst"
    shutil.copyfile(PST, target)
    pstgrow.rewrite(target, copies, size)
    return target


def messages(path: Path) -> list[Any]:
    pff = pypff.file()
    pff.open(str(path))
    found = []

    def walk(folder: Any) -> None:
        found.extend(folder.get_sub_message(i) for i in range(folder.number_of_sub_messages))
        for child in folder.sub_folders:
            walk(child)

    walk(pff.root_folder)
    return found


def by_libpff(item: Any) -> list[tuple[str | None, str | None, str | None, bytes]]:
    found = []
    for index in range(item.number_of_attachments):
        attachment = item.get_attachment(index)
        props = pstmail.properties(attachment)
        names = [pstmail.text(props, tag) for tag in (0x3707, 0x3704, 0x370E)]
        found.append((*names, bytes(attachment.read_buffer(attachment.size or 0))))
    return found


def by_nodes(
    nodes: pstnodes.Nodes, item: Any
) -> list[tuple[str | None, str | None, str | None, bytes]]:
    found = nodes.attachments(int(item.identifier))
    assert found is not None
    return [(a.long_name, a.name, a.mime_tag, a.blob.read()) for a in found]


@pytest.mark.parametrize("size", [None, 5000, 100_000, XXBLOCK_BYTES])
def test_every_attachment_reads_as_libpff_reads_it(tmp_path: Path, size: int | None) -> None:
    copies = 1 if size in (None, XXBLOCK_BYTES) else 2  # 22 of 8 MB are enough
    path = PST if size is None else enlarged(tmp_path, size, copies)
    nodes = pstnodes.Nodes.open(path)
    assert nodes is not None
    items = messages(path)
    seen = 0
    for item in items:
        expected = by_libpff(item)
        assert by_nodes(nodes, item) == expected
        seen += len(expected)
        assert all(len(data) == (size or len(data)) for *_, data in expected)
    assert seen == 22 * copies  # 11 pictures in each of 2 messages
    if size == XXBLOCK_BYTES:  # the data tree's root is an XXBLOCK of XBLOCKs
        blob = nodes.attachments(int(items[0].identifier))[0].blob  # type: ignore[index]
        root = nodes._block(blob.bid)
        assert struct.unpack_from("<BBH", root)[:2] == (1, 2)
    nodes.close()


def test_files_it_does_not_read_are_left_to_libpff(tmp_path: Path) -> None:
    ost = tmp_path / "mailbox.ost"  # 4 KiB pages (wVer 36)
    ost.write_bytes(lzma.decompress(OST.read_bytes()))
    cyclic = tmp_path / "cyclic.pst"
    data = bytearray(PST.read_bytes())
    data[513] = 2  # NDB_CRYPT_CYCLIC
    cyclic.write_bytes(bytes(data))
    ansi = tmp_path / "ansi.pst"
    data[10:12] = struct.pack("<H", 14)
    ansi.write_bytes(bytes(data))
    short = tmp_path / "short.pst"
    short.write_bytes(PST.read_bytes()[:12])
    files = (ost, cyclic, ansi, short, tmp_path, tmp_path / "missing.pst")
    assert [pstnodes.Nodes.open(p) for p in files] == [None] * 6


def copied(account: PstAccount, folder: str) -> tuple[list[Any], list[Any]]:
    metas = list(account.fetch_meta(folder))
    return metas, list(account.fetch_messages(folder, metas))


def test_messages_are_the_bytes_libpff_alone_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = enlarged(tmp_path, 100_000)
    reads: list[int] = []
    read = pstnodes.Blob.read
    monkeypatch.setattr(pstnodes.Blob, "read", lambda self: reads.append(self.size) or read(self))
    account = PstAccount(path)
    metas = list(account.fetch_meta("INBOX"))
    assert reads == []  # measured without reading any attachment's data
    own = [m.body.read() for m in account.fetch_messages("INBOX", metas)]
    assert reads == [100_000] * 22  # read once, to copy
    assert [m.size for m in metas] == [len(m) for m in own]
    account.close()
    monkeypatch.setattr(pstnodes.Nodes, "open", classmethod(lambda *_: None))
    account = PstAccount(path)
    metas, found = copied(account, "INBOX")
    assert [m.body.read() for m in found] == own
    assert len(reads) == 22
    account.close()


@pytest.mark.parametrize("copies", [1, 9])  # 9: measured and read in a window
def test_a_data_block_failing_its_crc_fails_its_messages_only(tmp_path: Path, copies: int) -> None:
    path = enlarged(tmp_path, 100_000, copies=copies)
    account = PstAccount(path)
    inbox = account._folder("INBOX").get_sub_message(0)
    nodes = pstnodes.Nodes.open(path)
    assert nodes is not None
    blob = nodes.attachments(int(inbox.identifier))[3].blob  # type: ignore[index]
    leaf = struct.unpack_from("<Q", nodes._block(blob.bid), 8 + 8 * 5)[0]
    ib = nodes._find(nodes._bbt, leaf, pstnodes.BBT_PAGE, pstnodes.BBT_LEAF)[1]
    with path.open("r+b") as out:  # the 6th data block of its 4th attachment
        out.seek(ib + 100)
        out.write(b"\x00\x01\x02")
    with pytest.raises(OSError, match="fails its check"):
        blob.read()
    nodes.close()
    _metas, broken = copied(account, "INBOX")  # its copies share the block
    assert len(broken) == copies
    for message in broken:
        assert isinstance(message, MessageError)
        assert str(path) in message.reason and "damaged item" in message.reason
    _metas, others = copied(account, "Recovered_Group2")
    assert len(others) == copies
    assert not any(isinstance(m, MessageError) for m in others)
    account.close()


def folders(path: Path) -> list[Any]:
    pff = pypff.file()
    pff.open(str(path))
    found = []

    def walk(folder: Any) -> None:
        found.append(folder)
        for child in folder.sub_folders:
            walk(child)

    walk(pff.root_folder)
    return found


@pytest.mark.parametrize("copies", [None, 1000])  # 1,000: a row matrix of 2 blocks
def test_a_folder_lists_its_messages_in_libpffs_order(tmp_path: Path, copies: int | None) -> None:
    path = PST if copies is None else enlarged(tmp_path, None, copies)
    nodes = pstnodes.Nodes.open(path)
    assert nodes is not None
    listed = 0
    for folder in folders(path):
        expected = [
            int(folder.get_sub_message(i).identifier) for i in range(folder.number_of_sub_messages)
        ]
        found = nodes.contents(int(folder.identifier))
        assert found == expected or (found is None and expected == [])  # no table: libpff
        listed += len(expected)
    assert listed == 2 * (copies or 1)
    nodes.close()


def test_a_folders_uidvalidity_is_what_libpff_alone_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = enlarged(tmp_path, None, 30)
    account = PstAccount(path)
    own = {f: account.status(f).uidvalidity for f in ("INBOX", "Recovered_Group2")}
    account.close()
    monkeypatch.setattr(pstnodes.Nodes, "open", classmethod(lambda *_: None))
    account = PstAccount(path)
    assert {f: account.status(f).uidvalidity for f in own} == own  # re-runs know their folders
    account.close()


class _Counting:
    """A pypff folder whose items opened are counted."""

    def __init__(self, folder: Any) -> None:
        self._folder = folder
        self.opened: list[int] = []
        self.asked: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.asked.append(name)
        return getattr(self._folder, name)

    def get_sub_message(self, index: int) -> Any:
        self.opened.append(index)
        return self._folder.get_sub_message(index)


def test_a_measured_message_is_copied_without_opening_it_again(tmp_path: Path) -> None:
    path = enlarged(tmp_path, 100_000, copies=3)
    account = PstAccount(path)
    metas = list(account.fetch_meta("INBOX"))
    listing = account.listing("INBOX")
    counting = _Counting(listing.folder)  # type: ignore[attr-defined]
    listing.folder = counting  # type: ignore[attr-defined]
    found = list(account.fetch_messages("INBOX", metas))
    assert counting.opened == []  # its frame, and its attachments by pstnodes
    assert [m.size for m in found] == [m.size for m in metas] == [len(m.body.read()) for m in found]
    again = list(account.fetch_messages("INBOX", metas))  # no frames left: through libpff
    assert counting.opened == [0, 1, 2]
    assert [m.sha256 for m in again] == [m.sha256 for m in found]
    account.close()


def test_a_folders_status_leaves_its_items_and_libpffs_table_alone(tmp_path: Path) -> None:
    path = enlarged(tmp_path, None, 30)
    account = PstAccount(path)
    counting = _Counting(account._folder("INBOX"))
    account._folders["INBOX"] = counting
    assert account.status("INBOX").exists == 30
    assert counting.asked == ["identifier"] and counting.opened == []  # its contents table
    account.close()


def test_a_table_with_no_row_width_is_left_to_libpff() -> None:
    info = struct.pack("<BBHHHHIII", 0x7C, 0, 0, 0, 0, 0, 0, 0x20, 0)  # TCINFO: rows at a HID
    block = struct.pack("<HBBII", 12 + len(info), 0xEC, 0x7C, 0x20, 0) + info
    block += struct.pack("<HHHH", 1, 0, 12, 12 + len(info))  # the page map: one allocation
    with pytest.raises(pstnodes.NotPlainError, match="row width"):
        pstnodes._row_ids(pstnodes.Heap([block]), None, (0, 0))  # type: ignore[arg-type]


def heap_of(*allocations: bytes, client: int = 0xBC) -> pstnodes.Heap:
    """A one-block heap on node holding ``allocations`` (HIDs 0x20, 0x40, ...)."""
    offsets = [12]
    for allocation in allocations:
        offsets.append(offsets[-1] + len(allocation))
    block = struct.pack("<HBBII", offsets[-1], 0xEC, client, 0x20, 0) + b"".join(allocations)
    block += struct.pack(f"<HH{len(offsets)}H", len(allocations), 0, *offsets)
    return pstnodes.Heap([block])


def test_a_bth_pointing_back_on_itself_is_left_to_libpff() -> None:
    header = struct.pack("<BBBBI", 0xB5, 2, 6, 8, 0x40)  # 8 levels under the root at 0x40
    loop = struct.pack("<HI", 1, 0x40) * 500  # 500 children, each the same page again
    with pytest.raises(pstnodes.NotPlainError, match="past any real"):
        pstnodes.properties(heap_of(header, loop))
    leaf = struct.pack("<HHI", 0x3705, 3, 1)
    flat = heap_of(struct.pack("<BBBBI", 0xB5, 2, 6, 0, 0x40), leaf)
    assert pstnodes.properties(flat) == {0x3705: (3, 1)}
