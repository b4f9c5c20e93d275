"""The archive benchmark's PST grower (benchmarks/pstgrow.py): a grown PST is one that libpff,
readpst (libpst) and mailferry read as every message of the original, N times over, the same
bytes, and nothing else."""

from __future__ import annotations

import collections
import hashlib
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pypff
import pytest

from mailferry.adapters.files.pst import PstAccount
from tests.unit.pstfiles import OST, PST, pstgrow


def grown(tmp_path: Path, copies: int) -> Path:
    target = tmp_path / f"grown-{copies}.pst"
    shutil.copyfile(PST, target)
    pstgrow.rewrite(target, copies)
    return target


def messages_by_folder(path: Path) -> dict[str, collections.Counter[str]]:
    """Each folder's messages as a multiset of digests of what libpff reads of them."""
    pff = pypff.file()
    pff.open(str(path))
    found: dict[str, collections.Counter[str]] = {}

    def walk(folder: pypff.folder, name: str) -> None:
        digests: collections.Counter[str] = collections.Counter()
        for index in range(folder.number_of_sub_messages):
            item = folder.get_sub_message(index)
            digest = hashlib.sha256(repr((item.subject, item.transport_headers)).encode())
            digest.update(repr((item.plain_text_body, item.html_body)).encode())
            for number in range(item.number_of_attachments):
                attachment = item.get_attachment(number)
                digest.update(attachment.read_buffer(attachment.size or 0))
            digests[digest.hexdigest()] += 1
        found[name] = digests
        for child in folder.sub_folders:
            walk(child, f"{name}/{child.name}")

    walk(pff.root_folder, "")
    pff.close()
    return found


def test_every_message_is_there_n_times_and_reads_the_same(tmp_path: Path) -> None:
    original = messages_by_folder(PST)
    assert sum(sum(c.values()) for c in original.values()) == 2
    copied = messages_by_folder(grown(tmp_path, 3))
    assert copied.keys() == original.keys()
    for folder, digests in original.items():
        assert copied[folder] == collections.Counter({d: 3 * n for d, n in digests.items()})


def first_allocation(block: bytes) -> int:
    """Where a heap block's first allocation starts, by its page map ([MS-PST] 2.3.1.5)."""
    (page_map,) = struct.unpack_from("<H", block)
    return int(struct.unpack_from("<H", block, page_map + 4)[0])


def test_a_folder_of_thousands_takes_more_heap_blocks_and_index_levels(tmp_path: Path) -> None:
    blocks, rows = pstgrow.contents_table(list(range(0x200004, 0x200004 + 32 * 9000, 32)))
    assert len(blocks) > 9
    assert [first_allocation(b) for b in blocks[:10]] == [12, 2, 2, 2, 2, 2, 2, 2, 66, 2]
    assert blocks[8][2:66] == bytes(64)  # the 9th block's bitmap header
    assert len(rows) == 9 * 9000
    per_folder = {k: sum(c.values()) for k, c in messages_by_folder(PST).items() if c}
    pff = pypff.file()
    pff.open(str(grown(tmp_path, 2500)))  # row index of two levels: 447 rows a leaf
    stack, counts = [pff.root_folder], []
    while stack:
        folder = stack.pop()
        counts.append(folder.number_of_sub_messages)
        stack.extend(folder.sub_folders)
    pff.close()
    assert sorted(c for c in counts if c) == sorted(2500 * n for n in per_folder.values())


@pytest.mark.skipif(shutil.which("readpst") is None, reason="readpst (pst-utils) not installed")
def test_readpst_reads_every_copy(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["readpst", "-q", "-o", str(out), str(grown(tmp_path, 4))], check=True)
    mails = [p.read_bytes().count(b"\nFrom ") + 1 for p in out.rglob("*") if p.is_file()]
    assert sum(mails) == 8


def without_boundaries(data: bytes) -> bytes:
    """A message with its MIME boundaries blanked: mailferry makes them of the item's NID, which
    is all a copy changes."""
    return re.sub(rb"[0-9a-f]{24}", b"-" * 24, data)


def test_mailferry_copies_every_copy_as_the_original(tmp_path: Path) -> None:
    source, bigger = PstAccount(PST), PstAccount(grown(tmp_path, 5))
    try:
        for folder in (f.name for f in source.list_folders() if source.status(f.name).exists):
            metas = list(source.fetch_meta(folder))
            expected = [
                without_boundaries(m.body.read()) for m in source.fetch_messages(folder, metas)
            ]
            more = list(bigger.fetch_meta(folder))
            assert len(more) == 5 * len(metas)
            found = [without_boundaries(m.body.read()) for m in bigger.fetch_messages(folder, more)]
            assert sorted(found) == sorted(expected * 5)
            assert [m.size for m in more] == [len(m) for m in found]
    finally:
        source.close()
        bigger.close()


def test_only_unicode_psts_with_small_pages_are_grown(tmp_path: Path) -> None:
    import lzma  # noqa: PLC0415

    ost = tmp_path / "mailbox.ost"
    ost.write_bytes(lzma.decompress(OST.read_bytes()))
    with pytest.raises(ValueError, match="512-byte pages"):
        pstgrow.rewrite(ost, 2)
