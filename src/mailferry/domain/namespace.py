"""Folder names across personal namespaces: the prefix a server puts before every folder.

Courier, and Cyrus as Debian ships it, announce ``NAMESPACE (("INBOX." "."))``: a user's folders
are ``INBOX.Projects``, ``INBOX.Sent``; a top-level ``Projects`` is refused. Other servers (Dovecot's
default, Exchange, Gmail) have the prefix ``""``. mailferry plans in *logical* names, the names a
user sees, without the prefix: ``INBOX.Projects`` on Courier and ``Projects`` on Dovecot are both
``Projects``, and reports never show a prefix.

The two functions are inverse: ``logical(physical(x)) == x`` for every logical name. A child of
INBOX on a server without a prefix (logical ``INBOX/Sub``) is ``INBOX.INBOX.Sub`` on a server
with one, so it cannot collide with a top-level ``Sub`` (``INBOX.Sub``). A name outside the
personal namespace (a shared folder, another user's) has no logical name.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

INBOX = "INBOX"


@dataclass(frozen=True)
class Namespace:
    """The personal namespace of one account: its prefix (``""`` or e.g. ``"INBOX."``) and
    hierarchy delimiter, as NAMESPACE announces them."""

    prefix: str = ""
    delimiter: str = "/"

    def physical(self, name: str) -> str:
        """The server's name for a logical folder name."""
        if not self.prefix or name.upper() == INBOX:
            return name
        return self.prefix + name

    def logical(self, name: str) -> str | None:
        """The logical name of a server's folder; None when it is outside the personal namespace."""
        if not self.prefix or name.upper() == INBOX:
            return name
        if _starts_with(name, self.prefix):
            rest = name[len(self.prefix) :]
            return rest or None
        return None


def _starts_with(name: str, prefix: str) -> bool:
    """Prefix match where a leading INBOX compares case-insensitively (RFC 3501 5.1)."""
    if prefix.upper().startswith(INBOX) and name.upper().startswith(INBOX):
        return name[len(INBOX) :].startswith(prefix[len(INBOX) :])
    return name.startswith(prefix)
