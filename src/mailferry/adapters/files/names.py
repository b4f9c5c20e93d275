"""File names held compactly: a Maildir folder of 400,000 messages (a 20 GB archive) kept its
names as Python strings, ~110 bytes each with the list, 44 MB of a 157 MB peak. Here they are one
buffer of their bytes and an array of where each ends: about 70 bytes a name. A folder read from
disk keeps its names in the order the directory gave them and an array of that order's positions
in UID order (``put_in_order``): sorting a copy would hold every name twice."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator


class Names:
    """An append-only sequence of names, indexed from 0 (negative indexes from the end)."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._blob = bytearray()
        self._ends = array("Q")
        self._order: array[int] | None = None  # stored positions, in the order given
        self.extend(names)

    def put_in_order(self, order: Iterable[int]) -> None:
        """Index the names in ``order`` (every stored position once) from now on."""
        positions = array("Q", order)
        if len(positions) != len(self._ends):
            raise ValueError("an order must name every position")
        self._order = positions

    def extend(self, names: Iterable[str]) -> None:
        for name in names:  # surrogateescape: a name os.fsdecode made of undecodable bytes
            self._blob += name.encode("utf-8", "surrogateescape")
            if self._order is not None:
                self._order.append(len(self._ends))
            self._ends.append(len(self._blob))

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, index: int) -> str:
        at = index + len(self._ends) if index < 0 else index
        if not 0 <= at < len(self._ends):
            raise IndexError(index)
        if self._order is not None:
            at = self._order[at]
        start = self._ends[at - 1] if at else 0
        return self._blob[start : self._ends[at]].decode("utf-8", "surrogateescape")

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(len(self._ends)))
