"""``Names``: a Maildir folder's file names held compactly (adapters/files/names.py)."""

from __future__ import annotations

import os

import hypothesis.strategies as st
import pytest
from hypothesis import given

from mailferry.adapters.files.maildir import in_uid_order, sort_key
from mailferry.adapters.files.names import Names


def test_names_come_back_as_they_were_given_in_order():
    odd = os.fsdecode(b"cur/1700000000.M1P2.host,S=5:2,S\xff")  # not UTF-8: a surrogate
    given = ["cur/1.a:2,S", "new/2.b", odd, "cur/3.ü,S=7:2,"]
    names = Names(given[:2])
    names.extend(given[2:])
    assert len(names) == 4
    assert list(names) == given
    assert [names[i] for i in range(-4, 4)] == given + given
    assert os.fsencode(names[2]) == b"cur/1700000000.M1P2.host,S=5:2,S\xff"
    for outside in (4, -5):
        with pytest.raises(IndexError):
            names[outside]
    assert not Names()
    assert len(Names([""])) == 1 and Names([""])[0] == ""


def test_names_put_in_order_are_indexed_in_it_and_new_ones_go_last():
    names = Names(["new/c", "cur/a", "cur/b"])
    names.put_in_order([1, 2, 0])
    assert list(names) == ["cur/a", "cur/b", "new/c"]
    names.extend(["cur/d"])
    assert list(names) == ["cur/a", "cur/b", "new/c", "cur/d"]
    assert names[-1] == "cur/d" and names[2] == "new/c"
    with pytest.raises(ValueError, match="every position"):
        Names(["a", "b"]).put_in_order([0])


_PART = st.sampled_from(["1700000000", "1700000001", "17", "x1", "1700000000x", ""])
_NAME = st.builds(
    lambda sub, head, tail, info: f"{sub}/{head}.{tail}{info}",
    st.sampled_from(["cur", "new"]),
    _PART,
    st.sampled_from(["M1P2.host", "M1P3.host", "a", "b,S=5"]),
    st.sampled_from(["", ":2,S", ":2,RS", ":2,"]),
)


@given(st.lists(_NAME, max_size=30))
def test_a_maildir_folder_is_ordered_as_a_stable_sort_by_its_key_would_order_it(paths):
    """``in_uid_order`` (delivery time first, then each second's names by base name) is the order
    ``sorted(paths, key=sort_key)`` gave, ties included: the UIDs of a folder read before keep
    their messages."""
    names = Names(paths)
    expected = sorted(paths, key=lambda path: sort_key(path.split("/", 1)[1]))
    names.put_in_order(in_uid_order(names))
    assert list(names) == expected
