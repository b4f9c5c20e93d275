"""``Names``: a Maildir folder's file names held compactly (adapters/files/names.py)."""

from __future__ import annotations

import os

import pytest

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
