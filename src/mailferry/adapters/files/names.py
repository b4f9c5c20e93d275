"""File names held compactly: a Maildir folder of 400,000 messages (a 20 GB archive) kept its
names as Python strings, ~110 bytes each with the list, 44 MB of a 157 MB peak. Here they are one
buffer of their bytes and an array of where each ends: about 70 bytes a name."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator


class Names:
    """An append-only sequence of names, indexed from 0 (negative indexes from the end)."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._blob = bytearray()
        self._ends = array("Q")
        self.extend(names)

    def extend(self, names: Iterable[str]) -> None:
        for name in names:  # surrogateescape: a name os.fsdecode made of undecodable bytes
            self._blob += name.encode("utf-8", "surrogateescape")
            self._ends.append(len(self._blob))

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, index: int) -> str:
        at = index + len(self._ends) if index < 0 else index
        if not 0 <= at < len(self._ends):
            raise IndexError(index)
        start = self._ends[at - 1] if at else 0
        return self._blob[start : self._ends[at]].decode("utf-8", "surrogateescape")

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(len(self._ends)))
