"""Sources whose folders are labels (Gmail): one message, seen in several folders.

Gmail shows a message once per label it carries (INBOX, Sent, each user label) and once more in
``[Gmail]/All Mail``, which holds every message but Spam and Trash. Copied folder by folder, a
message with three labels would arrive four times. The administrator chooses (``--labels``):

- ``once`` (the default): each message is copied once, into the first folder it is found in, in
  the order INBOX, Sent, Drafts, Archive, the user's labels (by name), Starred-like views, Junk,
  Trash, and the label aggregates (All Mail) last, so that All Mail adds only the archived mail,
  the messages that carry no label at all.
- ``folders``: each label folder gets its own copy (labels become folders); All Mail still adds
  only what is in no other folder.

Messages are recognised across folders by identity (Message-ID + INTERNALDATE + size, else the
SHA-256 of their bytes: ``label_key``), counted as multisets: a folder gets as many copies of an
identity as it holds beyond what copies of it already stand on the target. The decision is a pure
function of counts (``split_by_label``); the state store keeps each copied message's key, and the
run takes the folders that leave messages out one after another, in the order above.

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from mailferry.domain.folders import FolderMapping
from mailferry.domain.identity import epoch
from mailferry.domain.model import MessageMeta, Role


class LabelMode(StrEnum):
    ONCE = "once"
    FOLDERS = "folders"


# Where a message in several labels lands (``once``): the lowest rank wins.
_RANK = {
    Role.INBOX: 0,
    Role.SENT: 1,
    Role.DRAFTS: 2,
    Role.ARCHIVE: 3,
    None: 4,
    Role.FLAGGED: 5,
    Role.JUNK: 6,
    Role.TRASH: 7,
    Role.ALL: 8,
}


@dataclass(frozen=True)
class LabelPolicy:
    mode: LabelMode
    # The folders that aggregate all labels (Gmail's All Mail), besides any folder with the \All role.
    aggregates: tuple[re.Pattern[str], ...] = ()

    def is_aggregate(self, mapping: FolderMapping) -> bool:
        return mapping.role is Role.ALL or any(
            p.search(mapping.source.name) for p in self.aggregates
        )

    def dedupes(self, mapping: FolderMapping) -> bool:
        """True when the folder leaves out messages whose copy stands elsewhere on the target."""
        return self.mode is LabelMode.ONCE or self.is_aggregate(mapping)

    def order(
        self, mappings: Iterable[FolderMapping]
    ) -> tuple[list[FolderMapping], list[FolderMapping]]:
        """(folders that may run in any order and in parallel, folders to run one after another
        in this order). Every folder that leaves messages out runs after those that may hold them."""
        free = [m for m in mappings if not self.dedupes(m)]
        ordered = sorted(
            (m for m in mappings if self.dedupes(m)),
            key=lambda m: (self.is_aggregate(m), _RANK.get(m.role, _RANK[None]), m.source.name),
        )
        return free, ordered


def label_key(
    message_id: str | None, internaldate: int | None, size: int, sha256: str | None
) -> str | None:
    """The key that recognises one message in every folder of the source (None: hash it first).

    ``internaldate`` is in epoch seconds. Keys are digests, so the state store indexes short text.
    """
    if message_id and internaldate is not None:
        text = f"mid\x00{message_id}\x00{internaldate}\x00{size}"
    elif sha256:
        text = f"sha\x00{sha256}"
    else:
        return None
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def meta_key(meta: MessageMeta) -> str | None:
    return label_key(meta.message_id, epoch(meta.internaldate), meta.size, meta.sha256)


@dataclass(frozen=True)
class LabelTally:
    """What the state says of some keys: copies standing on the target (from any folder of the
    pair), and how many of this folder's own messages are accounted for (copied or left out)."""

    standing: Counter[str] = field(default_factory=Counter)
    mine: Counter[str] = field(default_factory=Counter)


def split_by_label(
    candidates: Sequence[tuple[MessageMeta, str]], tally: LabelTally
) -> tuple[list[MessageMeta], list[tuple[MessageMeta, str]]]:
    """(messages to copy, messages left out with their key) of a folder that leaves out messages
    whose copy stands elsewhere.

    For each key, the folder needs as many copies as it holds messages of that key (accounted
    before plus candidates now); copies already standing count, wherever they are. Lower UIDs are
    copied first.
    """
    wanted = Counter(key for _meta, key in candidates)
    quota = {
        key: max(0, min(count, tally.mine[key] + count - tally.standing[key]))
        for key, count in wanted.items()
    }
    copy: list[MessageMeta] = []
    left_out: list[tuple[MessageMeta, str]] = []
    for meta, key in sorted(candidates, key=lambda pair: pair[0].uid):
        if quota[key] > 0:
            quota[key] -= 1
            copy.append(meta)
        else:
            left_out.append((meta, key))
    return copy, left_out
