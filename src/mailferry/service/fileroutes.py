"""Where a batch's mailboxes are kept in files: an endpoint whose location is a file URL template.

An endpoint may be files instead of a server: ``maildir:///var/vmail/old.example/{user}``,
``pst:///shares/{user}/archive.pst``, ``mbox:///backup/{user}.mbox``. ``{user}`` is the mailbox's
user on that side (the CSV's), so one CSV maps files to mailboxes as it maps logins; the template
may name it more than once, or not at all (every mailbox then shares one place: allowed, since a
source is never written, but rarely meant for a target, and said so in the batch's problems).

A user is put into a path as it is, so it must stay one path segment: no ``/``, no NUL, not
``.`` or ``..`` or anything starting with a dot. With that, and no ``..`` in the template, every
expanded path stays under the template's fixed part, which is what the web's ``--files-root``
check relies on (``under_roots``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mailferry.adapters.files import open_files
from mailferry.config import FILE_SCHEMES, FILE_TARGETS, FileStore, is_file_url, parse_file_store
from mailferry.domain.errors import ConfigError

PLACEHOLDER = "{user}"


def files_problems(template: str, option: str) -> list[str]:
    """What is wrong with a file location template (``option``: its name where it was given)."""
    if not is_file_url(template):
        kinds = ", ".join(f"{k}://" for k in FILE_SCHEMES)
        return [f"{option} {template!r}: expected {kinds} with an absolute path"]
    rest = template.partition("://")[2]
    problems = []
    if not rest.startswith("/"):
        problems.append(f"{option} {template!r}: expected KIND:///ABSOLUTE/PATH")
    if ".." in rest.split("/"):
        problems.append(f"{option} {template!r}: no .. in the path")
    leftover = rest.replace(PLACEHOLDER, "")
    if "{" in leftover or "}" in leftover:
        problems.append(f"{option} {template!r}: the only placeholder is {PLACEHOLDER}")
    return problems


def user_problem(user: str) -> str | None:
    """Why ``user`` cannot name a place in files (None: it can)."""
    if not user or "/" in user or "\0" in user or "\\" in user or user.startswith("."):
        return f"user {user!r} cannot be part of a file path (no /, \\, or leading dot)"
    return None


def expand_files(template: str, user: str, *, side: str = "source") -> FileStore:
    """The place of ``user``'s mail (a ConfigError for a user that is no path segment)."""
    problem = user_problem(user)
    if problem is not None:
        raise ConfigError(problem)
    kind, _, rest = template.partition("://")
    return parse_file_store(f"{kind}://{rest.replace(PLACEHOLDER, user)}", side=side)


def target_problems(template: str, endpoint: str) -> list[str]:
    """A file endpoint as a batch's target: a format mailferry writes, one place per mailbox."""
    kind = template.partition("://")[0].lower()
    problems = []
    if kind not in FILE_TARGETS:
        problems.append(
            f"target endpoint {endpoint!r}: {kind}:// is a source only; a target can be "
            "maildir:// or mbox://"
        )
    if PLACEHOLDER not in template:
        problems.append(
            f"target endpoint {endpoint!r}: {template!r} has no {PLACEHOLDER}: every mailbox "
            "would be written to the same place"
        )
    return problems


def under_roots(template: str, roots: Sequence[Path]) -> bool:
    """Whether every path the template expands to lies under one of ``roots``: its fixed part
    (up to the first ``{user}``'s directory) is checked, as ``..`` and users with ``/`` are
    refused."""
    path = template.partition("://")[2]
    fixed = Path(path.partition(PLACEHOLDER)[0] if PLACEHOLDER in path else path)
    if PLACEHOLDER in path and not path.partition(PLACEHOLDER)[0].endswith("/"):
        fixed = fixed.parent  # /shares/x-{user}: the user changes the last segment
    return any(fixed == root or root in fixed.parents for root in roots)


def probe_files(template: str, user: str | None) -> str:
    """`endpoint test` of files: ``user``'s place opened as a source and its folders counted
    (a ConfigError or FolderError when it cannot be read; nothing is created or written)."""
    if PLACEHOLDER in template and not user:
        raise ConfigError(f"{template} names {PLACEHOLDER}: test it with --user USER")
    store = expand_files(template, user or "")
    account = open_files(store.kind, store.path, writable=False)
    try:
        folders = [f for f in account.list_folders() if "\\Noselect" not in f.flags]
        messages = sum(account.status(f.name).exists for f in folders)
    finally:
        account.close()
    return f"{store.display()}: readable, {len(folders)} folders, {messages} messages"
