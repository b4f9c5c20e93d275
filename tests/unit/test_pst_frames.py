"""Frames of measured PST messages kept for their copy (``pstframes``) and attachments read
ahead (``pstahead.Budget``): bounded for the whole process, in memory and on disk, and never a
wrong frame for a message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailferry.adapters.files import pstframes, pstmail
from mailferry.adapters.files.pst import PstAccount
from mailferry.adapters.files.pstahead import Budget, ReadAhead
from mailferry.adapters.files.pstframes import Frames

PST = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "pst" / "outlook.pst"
if not PST.exists():
    PST = Path("/work/shared/testdata/pst/outlook.pst")


def frame(n: int, *, kept: bool = True, size: int = 60) -> pstmail.Frame:
    pieces = (bytes([n % 256]) * (size // 2), b"-" * (size // 4))
    data = (bytes([(n + 1) % 256]) * (size // 4),) if kept else None
    return pstmail.Frame(pieces, rebuilt=n % 2 == 0, data=data)


def spill_size(frames: Frames) -> int:
    return 0 if frames._file is None else os.fstat(frames._file.fileno()).st_size


def test_frames_past_the_memory_bound_go_to_the_spill_file_and_come_back_whole() -> None:
    frames = Frames(limit=150)
    for index in range(3):
        frames.keep(("s", "INBOX", index), frame(index))
    assert len(frames) == 3
    assert frames.spilled == 1  # 180 bytes is over the limit: the oldest went to disk
    assert frames._bytes <= 150
    assert frames.take(("s", "INBOX", 0)) == frame(0)
    assert frames.take(("s", "INBOX", 0)) is None  # taken once
    assert frames.spilled == 0
    assert spill_size(frames) == 0  # emptied once nothing in it is waiting
    assert frames.take(("s", "INBOX", 2)) == frame(2)


def test_a_frame_without_its_attachments_comes_back_without_them() -> None:
    frames = Frames(limit=10)
    bare = frame(3, kept=False)
    frames.keep(("s", "INBOX", 1), bare)
    assert frames.spilled == 1
    assert frames.take(("s", "INBOX", 1)) == bare
    no_attachments = pstmail.Frame((b"whole message",), rebuilt=False, data=())
    frames.keep(("s", "INBOX", 2), no_attachments)
    assert frames.take(("s", "INBOX", 2)) == no_attachments


def test_past_the_spill_bound_the_oldest_are_dropped_and_built_the_long_way() -> None:
    frames = Frames(limit=0, spill=130)  # two frames of 60 bytes on disk, not three
    for index in range(4):
        frames.keep(("s", "INBOX", index), frame(index))
    assert frames.take(("s", "INBOX", 0)) == frame(0)
    assert frames.take(("s", "INBOX", 1)) == frame(1)
    assert frames.take(("s", "INBOX", 2)) is None
    assert frames.take(("s", "INBOX", 3)) is None
    assert spill_size(frames) == 0
    frames.keep(("s", "INBOX", 4), frame(4))  # room again once the file was emptied
    assert frames.take(("s", "INBOX", 4)) == frame(4)


def test_a_session_forgets_its_own_frames_only() -> None:
    frames = Frames(limit=70)
    frames.keep((1, "INBOX", 0), frame(0))
    frames.keep((2, "INBOX", 0), frame(1))
    frames.keep((1, "Sent", 0), frame(2))
    assert frames.spilled == 2  # the first two, on disk
    frames.forget(1)
    assert len(frames) == 1
    assert frames.spilled == 1
    assert frames.take((2, "INBOX", 0)) == frame(1)
    assert spill_size(frames) == 0


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 7), st.integers(0, 200)), max_size=60),
    st.integers(0, 300),
    st.integers(0, 600),
)
def test_any_sequence_gives_back_the_frame_kept_or_nothing_within_the_bounds(
    steps: list[tuple[bool, int, int]], limit: int, spill: int
) -> None:
    frames = Frames(limit=limit, spill=spill)
    model: dict[tuple[str, int], pstmail.Frame] = {}
    for keep, index, size in steps:
        key = ("s", index)
        if keep:
            model[key] = frame(index + size, kept=size % 3 != 0, size=size)
            frames.keep(key, model[key])
        else:
            found = frames.take(key)
            expected = model.pop(key, None)
            assert found is None or found == expected
        assert frames._bytes <= limit
        assert frames._end <= spill
    assert frames.spilled == sum(isinstance(v, pstframes._Spilled) for v in frames._kept.values())


def test_sessions_of_one_process_share_the_frames_and_keep_their_own() -> None:
    first, second = PstAccount(PST), PstAccount(PST)
    assert first._frames is second._frames is pstframes.SHARED
    folder = next(f.name for f in first.list_folders() if first.status(f.name).exists)
    metas = list(first.fetch_meta(folder))
    list(second.fetch_meta(folder))
    kept = len(pstframes.SHARED)
    second.close()
    assert len(pstframes.SHARED) == kept - len(metas)  # the second one's went with it
    [message] = first.fetch_messages(folder, metas[:1])
    assert message.size == metas[0].size
    first.close()


def test_readers_of_several_folders_share_one_budget(tmp_path: Path) -> None:
    account = PstAccount(PST)
    folder = next(f.name for f in account.list_folders() if account.status(f.name).exists)
    route = account._routes[folder]
    count = account.status(folder).exists
    account.close()
    budget = Budget(1)
    # One budget of one byte for both: each reader holds one item at most, none waits forever.
    aheads = [ReadAhead(PST, route, range(count), readers=2, budget=budget) for _ in range(2)]
    try:
        found = [[ahead.take(i) for i in range(count)] for ahead in aheads]
        assert found[0] == found[1]
        assert any(found[0])
        assert budget.held == 0
    finally:
        for ahead in aheads:
            ahead.close()


def test_a_spill_file_that_cannot_be_written_only_costs_the_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*_: object) -> int:
        raise OSError(28, "No space left on device")

    frames = Frames(limit=70)
    monkeypatch.setattr(pstframes.os, "pwrite", full)
    for index in range(3):
        frames.keep(("s", "INBOX", index), frame(index))
    assert frames.spill == 0  # spills no more
    assert frames.take(("s", "INBOX", 0)) is None  # built the long way
    assert frames.take(("s", "INBOX", 2)) == frame(2)  # in memory all along


def test_the_spill_file_takes_a_quarter_of_the_free_space_at_most(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Nearly:
        f_bavail, f_frsize = 1, 480  # 480 bytes free: room for 120, two frames of 60

    monkeypatch.setattr(pstframes.os, "fstatvfs", lambda _fd: Nearly)
    frames = Frames(limit=0)
    for index in range(3):
        frames.keep(("s", "INBOX", index), frame(index))
    assert frames.spill == 120
    assert [frames.take(("s", "INBOX", i)) is not None for i in range(3)] == [True, True, False]
