"""Where a collection pass keeps the source's bytes while it plans: a temporary file, so that
memory stays flat in the size of the collection (service/davitems.py)."""

from __future__ import annotations

import tempfile
from typing import BinaryIO

from mailferry.domain.items import ComponentKind


class Spool:
    """Source bytes on disk while a collection is planned: memory stays flat in its size."""

    def __init__(self) -> None:
        self._file: BinaryIO = tempfile.TemporaryFile(prefix="mailferry-dav-")  # noqa: SIM115
        self._where: dict[str, tuple[int, int]] = {}
        self.components: dict[str, ComponentKind] = {}  # what identify() found, not read twice

    def put(self, href: str, data: bytes, component: ComponentKind) -> None:
        offset = self._file.seek(0, 2)
        self._file.write(data)
        self._where[href] = (offset, len(data))
        self.components[href] = component

    def get(self, href: str) -> bytes | None:
        place = self._where.get(href)
        if place is None:
            return None
        self._file.seek(place[0])
        return self._file.read(place[1])

    def close(self) -> None:
        self._file.close()
