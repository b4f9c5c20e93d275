"""Provider profiles: what mailferry knows about a kind of server, as data (one small table).

A profile is chosen by host (``profile_for_host``) or by name (``--profile``). It says which folders
of that provider are system folders to leave behind when it is the *source*, which folder names it
reserves when it is the *target* (and what to call a source folder of that name instead), the largest
message it accepts, which capabilities not to count on, and how it asks clients to slow down. The
composition root turns the folder rules into ``MappingOptions`` (exclude patterns and ``--map``
renames); nothing else in the code asks which provider it is talking to.

Pure: no I/O.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from mailferry.domain.errors import ConfigError
from mailferry.domain.folders import MappingOptions
from mailferry.domain.labels import LabelMode, LabelPolicy


class AuthPreference(StrEnum):
    XOAUTH2 = "xoauth2"
    OAUTHBEARER = "oauthbearer"


@dataclass(frozen=True)
class Profile:
    name: str
    hosts: tuple[str, ...] = ()  # shell patterns matched against the endpoint's host, lowercase
    # Top-level folders (and their sub-folders) that are the provider's system folders: never copied
    # from it. Matched case-insensitively, under any hierarchy delimiter.
    system_folders: tuple[str, ...] = ()
    # Folder names the provider reserves as a target: (reserved name, what to create instead).
    reserved_names: tuple[tuple[str, str], ...] = ()
    message_size_limit: int | None = None  # bytes; larger messages are reported, not sent
    assume_multiappend: bool = True  # False: never rely on MULTIAPPEND even if advertised
    assume_condstore: bool = True  # False: never rely on CONDSTORE even if advertised
    # True: the server stores a converted copy (Exchange rewrites MIME), so size and bytes differ from
    # what was appended; messages are then recognised by Message-ID and INTERNALDATE alone.
    rewrites_messages: bool = False
    auth_preference: tuple[AuthPreference, ...] = (
        AuthPreference.XOAUTH2,
        AuthPreference.OAUTHBEARER,
    )
    # What the provider says when it throttles (see domain/responses.py, which understands each).
    throttle_hints: tuple[str, ...] = ()
    # Gmail: the folders are labels, one message shows in each of its labels (domain/labels.py),
    # and these folders aggregate every label (they add only what is in no other folder).
    folders_are_labels: bool = False
    label_aggregates: tuple[str, ...] = ()
    oauth_scope: str | None = None


GENERIC = Profile(name="generic")

MICROSOFT365 = Profile(
    name="microsoft365",
    rewrites_messages=True,
    hosts=("outlook.office365.com", "outlook.office.com", "*.outlook.com", "*.office365.com"),
    system_folders=(
        "Sync Issues",
        "Conflicts",
        "Local Failures",
        "Server Failures",
        "Calendar",
        "Contacts",
        "Tasks",
        "Notes",
        "Journal",
        "Outbox",
        "Conversation History",
        "RSS Feeds",
        "RSS Subscriptions",
        "Social Activity Notifications",
        "Yammer Root",
        "Files",
        "Synchronisierungsprobleme",
        "Kalender",
        "Kontakte",
        "Aufgaben",
        "Notizen",
        "Postausgang",
    ),
    # "Files" is an Exchange system folder (attachments view): a mail folder cannot take its name.
    reserved_names=(("Files", "Files (migrated)"),),
    # Exchange Online's default MaxReceiveSize (36 MB); tenants may raise it up to 150 MB.
    message_size_limit=36 * 1024 * 1024,
    assume_multiappend=False,
    assume_condstore=False,
    auth_preference=(AuthPreference.XOAUTH2,),
    throttle_hints=(
        "Request is throttled. Suggested Backoff Time: N milliseconds",
        "Server Unavailable. 15",
    ),
    oauth_scope="https://outlook.office365.com/.default",
)

GMAIL = Profile(
    name="gmail",
    hosts=("imap.gmail.com", "imap.googlemail.com"),
    # Important and Starred are views Gmail computes (a star is the \Flagged flag, which travels
    # with the message). All Mail is kept: it is the only home of archived (unlabelled) mail, so
    # leaving it out would lose mail; it adds only what no other folder holds (domain/labels.py).
    system_folders=("[Gmail]/Important", "[Gmail]/Starred"),
    folders_are_labels=True,
    label_aggregates=("[Gmail]/All Mail", "[Google Mail]/All Mail"),
    # Gmail announces APPENDLIMIT itself (honoured from the capability); no fixed number here.
    auth_preference=(AuthPreference.XOAUTH2, AuthPreference.OAUTHBEARER),
    throttle_hints=("[OVERQUOTA] Account exceeded command or bandwidth limits",),
    oauth_scope="https://mail.google.com/",
)

PROFILES: dict[str, Profile] = {p.name: p for p in (GENERIC, MICROSOFT365, GMAIL)}
PROFILE_NAMES = ("auto", *PROFILES)


def profile_for_host(host: str) -> Profile:
    """The profile whose host patterns match ``host``, else the generic one."""
    lowered = host.lower().rstrip(".")
    for profile in PROFILES.values():
        if any(fnmatch.fnmatchcase(lowered, pattern) for pattern in profile.hosts):
            return profile
    return GENERIC


def choose_profile(name: str | None, host: str) -> Profile:
    """``--profile NAME`` (``auto`` or None: by host)."""
    if name is None or name == "auto":
        return profile_for_host(host)
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(
            f"--profile {name!r}: expected one of {', '.join(PROFILE_NAMES)}"
        ) from None


def system_folder_patterns(profile: Profile) -> tuple[re.Pattern[str], ...]:
    """Regexes for ``MappingOptions.exclude``: each system folder and everything below it.

    The source's delimiter is not known before connecting, so a nested name (``[Gmail]/All Mail``)
    matches with any of ``/`` and ``.`` between its levels.
    """
    return tuple(_name_pattern(name, children=True) for name in profile.system_folders)


def _name_pattern(name: str, *, children: bool) -> re.Pattern[str]:
    """``name`` (levels split by ``/``) under either delimiter, case-insensitively."""
    body = "[/.]".join(re.escape(level) for level in name.split("/"))
    below = "(?:[/.].*)?" if children else ""
    return re.compile(rf"^{body}{below}$", re.IGNORECASE)


def label_policy(profile: Profile, mode: LabelMode | str) -> LabelPolicy | None:
    """How to copy a source whose folders are labels (None: an ordinary source)."""
    if not profile.folders_are_labels:
        return None
    try:
        chosen = LabelMode(mode)
    except ValueError:
        choices = ", ".join(m.value for m in LabelMode)
        raise ConfigError(f"--labels {mode!r}: expected one of {choices}") from None
    aggregates = tuple(_name_pattern(n, children=False) for n in profile.label_aggregates)
    return LabelPolicy(chosen, aggregates)


def is_system_folder(profile: Profile, name: str) -> bool:
    return any(p.search(name) for p in system_folder_patterns(profile))


def reserved_renames(
    profile: Profile, user_maps: Iterable[tuple[str, str]]
) -> tuple[tuple[str, str], ...]:
    """``--map`` pairs that keep source folders off the target's reserved names.

    A folder the user mapped already is left to the user's map.
    """
    mapped = {src.lower() for src, _ in user_maps}
    return tuple(
        (name, instead) for name, instead in profile.reserved_names if name.lower() not in mapped
    )


def effective_size_limit(profile: Profile, advertised: int | None) -> int | None:
    """The largest message to send: the smaller of the server's APPENDLIMIT and the profile's."""
    limits = [limit for limit in (advertised, profile.message_size_limit) if limit is not None]
    return min(limits) if limits else None


def apply_profiles(mapping: MappingOptions, source: Profile, target: Profile) -> MappingOptions:
    """The user's folder options plus the profiles' rules: the source provider's system folders are
    excluded, the target provider's reserved names are mapped elsewhere."""
    renames = reserved_renames(target, mapping.maps)
    return MappingOptions(
        maps=mapping.maps + renames,
        include=mapping.include,
        exclude=mapping.exclude + system_folder_patterns(source),
        map_reasons=mapping.map_reasons
        + tuple((name, f"{name!r} is reserved on {target.name} targets") for name, _ in renames),
    )
