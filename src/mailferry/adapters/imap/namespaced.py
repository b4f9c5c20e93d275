"""An IMAP account that speaks logical folder names: the personal namespace's prefix (``INBOX.``
on Courier and Cyrus) is added to every name sent and removed from every name listed, by the
pure rules of ``domain/namespace.py``. The service layer, the state store and reports never see
the prefix, so a migration from or to such a server maps ``INBOX.Projects`` to ``Projects``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from mailferry.adapters.imap.account import ImapAccount
from mailferry.domain.model import (
    AppendRequest,
    AppendResult,
    FetchedMessage,
    FolderInfo,
    FolderStatus,
    MessageMeta,
)
from mailferry.domain.namespace import Namespace


class NamespacedAccount(ImapAccount):
    """ImapAccount with every folder name translated between logical and physical."""

    @property
    def namespace(self) -> Namespace:
        return Namespace(self.personal_prefix, self.delimiter)

    def _physical(self, folder: str) -> str:
        return self.namespace.physical(folder)

    def list_folders(self) -> list[FolderInfo]:
        """Folders of the personal namespace only, by logical name (shared ones are left out)."""
        namespace = self.namespace
        listed = []
        for folder in super().list_folders():
            name = namespace.logical(folder.name)
            if name is not None:
                listed.append(folder if name is folder.name else replace(folder, name=name))
        return listed

    def create_folder(self, name: str) -> None:
        super().create_folder(self._physical(name))

    def subscribe(self, name: str) -> None:
        super().subscribe(self._physical(name))

    def create_folders(self, names: Sequence[str]) -> dict[str, str]:
        return self._logical(super().create_folders, names)

    def subscribe_folders(self, names: Sequence[str]) -> dict[str, str]:
        return self._logical(super().subscribe_folders, names)

    def _logical(
        self, call: Callable[[Sequence[str]], dict[str, str]], names: Sequence[str]
    ) -> dict[str, str]:
        """``call`` on the physical names; its refusals under the logical ones."""
        physical = {self._physical(name): name for name in names}
        return {physical[name]: reason for name, reason in call(list(physical)).items()}

    def status(self, folder: str) -> FolderStatus:
        return super().status(self._physical(folder))

    def statuses(self, folders: Sequence[str]) -> dict[str, FolderStatus]:
        physical = {self._physical(folder): folder for folder in folders}
        found = super().statuses(list(physical))
        return {physical[name]: status for name, status in found.items()}

    def permanent_flags(self, folder: str) -> frozenset[str]:
        return super().permanent_flags(self._physical(folder))

    def uid_marks(self, folder: str, every: int) -> list[int]:
        return super().uid_marks(self._physical(folder), every)

    def count_changed(self, folder: str, since: int) -> int | None:
        return super().count_changed(self._physical(folder), since)

    def status_with_listing(self, folder: str) -> tuple[FolderStatus, list[MessageMeta] | None]:
        return super().status_with_listing(self._physical(folder))

    def send_listing(self, folder: str) -> None:
        super().send_listing(self._physical(folder))

    def fetch_meta(
        self, folder: str, uids: Sequence[int] | None = None, *, message_ids: bool = False
    ) -> Iterator[MessageMeta]:
        return super().fetch_meta(self._physical(folder), uids, message_ids=message_ids)

    def fetch_flags(
        self, folder: str, changed_since: int | None = None
    ) -> Iterator[tuple[int, frozenset[str]]]:
        return super().fetch_flags(self._physical(folder), changed_since)

    def send_bodies(self, folder: str, metas: Sequence[MessageMeta]) -> bool:
        return super().send_bodies(self._physical(folder), metas)

    def fetch_messages(self, folder: str, metas: Sequence[MessageMeta]) -> Iterator[FetchedMessage]:
        return super().fetch_messages(self._physical(folder), metas)

    def append_batch(self, folder: str, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        return super().append_batch(self._physical(folder), requests)

    def send_batch(
        self, folder: str, requests: Sequence[AppendRequest]
    ) -> Callable[[], list[AppendResult]]:
        return super().send_batch(self._physical(folder), requests)

    def store_flags(self, folder: str, updates: Sequence[tuple[int, frozenset[str]]]) -> None:
        super().store_flags(self._physical(folder), updates)
