"""Where each source folder goes on the target: delimiters, special-use roles, ``--map``, filters.

Pure: both sides' LIST snapshots and the options in, a ``FolderPlan`` out. Names are decoded.
No I/O, no logging.

How a source folder's target name is chosen, most specific rule first:

1. An anchor on the folder itself: an explicit ``--map SRC=DST`` (exact source name), else its role
   (the source's winning Sent/Drafts/... folder goes to the target's folder of that role, INBOX to
   INBOX; without such a target folder, to its own translated name). Every other source folder of
   that role, flagged or named ("Sent Items" beside a ``\\Sent`` "Sent"), goes where the winner goes,
   reported as a merge. Anchored folders are *intended* merges: they are never renamed for a collision.
2. Otherwise, below the nearest listed ancestor (wherever it went, renames included) or the
   nearest unlisted anchor prefix, whichever is deeper (``--map Archive=Old.Archive`` sends
   ``Archive/2019`` to ``Old.Archive.2019`` even if ``Archive`` is not listed).
   The remaining source segments are translated: a segment holding the target's delimiter has it
   replaced by ``_`` (``-`` if that name is taken), empty segments are dropped. If the name is still
   taken by an earlier source folder, the last segment gets `` (2)``, `` (3)``...

Collisions are judged only among source folders, never against folders that already exist on the
target, so a re-run against a target filled by an earlier run picks the same names again.
``\\All`` and ``\\Flagged`` folders carry their role in the mapping but are placed like any other.

Target-name comparison is case-sensitive except for a first segment ``INBOX``.
"""

from __future__ import annotations

import functools
import itertools
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from mailferry.domain.errors import ConfigError
from mailferry.domain.model import FolderInfo, Role

if TYPE_CHECKING:
    import re
    from collections.abc import Iterable, Mapping, Sequence

_Path: TypeAlias = tuple[str, ...]
_Placed: TypeAlias = tuple[_Path, tuple[str, ...]]  # target path, reasons for renaming

INBOX = "INBOX"
_VIRTUAL = frozenset({Role.ALL, Role.FLAGGED})  # placed like ordinary folders, for now

_FLAG_ROLES: dict[str, Role] = {
    "\\sent": Role.SENT,
    "\\drafts": Role.DRAFTS,
    "\\trash": Role.TRASH,
    "\\junk": Role.JUNK,
    "\\archive": Role.ARCHIVE,
    "\\all": Role.ALL,
    "\\flagged": Role.FLAGGED,
    # Gmail's pre-RFC 6154 XLIST spellings, still sent by some proxies.
    "\\spam": Role.JUNK,
    "\\allmail": Role.ALL,
    "\\starred": Role.FLAGGED,
}

# Well-known names, most common first: the earlier entry wins when several folders match one role.
_ROLE_NAMES: dict[Role, tuple[str, ...]] = {
    Role.SENT: (
        "Sent", "Sent Items", "Sent Messages", "Sent Mail", "Gesendet", "Gesendete Elemente",
        "Gesendete Objekte", "Envoyés", "Éléments envoyés", "Messages envoyés", "Enviados",
        "Elementos enviados", "Itens enviados", "Posta inviata", "Inviati", "Verzonden",
        "Verzonden items", "Skickat", "Skickade objekt", "Sendt", "Sendte elementer", "Lähetetyt",
        "Wysłane", "Odeslané", "Отправленные",
    ),
    Role.DRAFTS: (
        "Drafts", "Draft", "Entwürfe", "Brouillons", "Borradores", "Rascunhos", "Bozze",
        "Concepten", "Utkast", "Kladder", "Luonnokset", "Kopie robocze", "Koncepty", "Черновики",
    ),
    Role.TRASH: (
        "Trash", "Deleted Items", "Deleted Messages", "Bin", "Papierkorb", "Gelöschte Elemente",
        "Gelöschte Objekte", "Corbeille", "Éléments supprimés", "Papelera", "Elementos eliminados",
        "Lixeira", "Itens excluídos", "Cestino", "Posta eliminata", "Prullenbak",
        "Verwijderde items", "Papperskorgen", "Borttaget", "Papirkurv", "Slettede elementer",
        "Roskakori", "Kosz", "Koš", "Корзина", "Удаленные", "Удалённые",
    ),
    Role.JUNK: (
        "Junk", "Junk E-mail", "Junk Email", "Junk Mail", "Spam", "Bulk Mail", "Junk-E-Mail",
        "Spamverdacht", "Courrier indésirable", "Correo no deseado", "Lixo eletrônico",
        "Posta indesiderata", "Ongewenste e-mail", "Skräppost", "Uønsket e-post",
        "Nevyžádaná pošta", "Спам",
    ),
    Role.ARCHIVE: ("Archive", "Archives", "Archiv", "Archivio", "Archivo", "Archief", "Arkiv"),
}  # fmt: skip


def _fold(name: str) -> str:
    """Canonical caseless form (Unicode 3.13 D145), so NFC and NFD spellings compare equal."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


_NAME_ROLES: dict[str, tuple[Role, int]] = {
    _fold(name): (role, rank)
    for role, names in _ROLE_NAMES.items()
    for rank, name in enumerate(names)
}


@dataclass(frozen=True)
class MappingOptions:
    maps: tuple[tuple[str, str], ...] = ()  # (full source name, full target name), see parse_map
    include: tuple[re.Pattern[str], ...] = ()  # searched in the full source name
    exclude: tuple[re.Pattern[str], ...] = ()
    # Why a map was added for the user (a provider profile's reserved name): reported as a rename.
    map_reasons: tuple[tuple[str, str], ...] = ()  # (full source name, reason)


@dataclass(frozen=True)
class FolderMapping:
    source: FolderInfo
    target: str  # full target name, with the target's delimiter
    role: Role | None  # the source folder's role, if it won that role on the source
    rename_reason: str | None  # why the name differs from a plain delimiter translation


@dataclass(frozen=True)
class FolderPlan:
    mappings: tuple[FolderMapping, ...]  # selectable, selected source folders; parents first
    create: tuple[str, ...]  # target names to CREATE, parents first
    subscribe: tuple[str, ...]  # targets of subscribed source folders not yet subscribed
    excluded: tuple[str, ...]  # selectable source folders dropped by include/exclude

    @functools.cached_property
    def _by_target(self) -> dict[str, tuple[FolderMapping, ...]]:
        grouped: dict[str, list[FolderMapping]] = {}
        for mapping in self.mappings:
            grouped.setdefault(mapping.target, []).append(mapping)
        return {target: tuple(group) for target, group in grouped.items()}

    def sharing(self, target: str) -> tuple[FolderMapping, ...]:
        """The mappings into ``target`` (several source folders may merge into one), found
        without a walk over every mapping: planning stays linear in the number of folders."""
        return self._by_target.get(target, ())


def parse_map(spec: str) -> tuple[str, str]:
    """``'SRC=DST'`` -> ``(SRC, DST)``, split at the first ``=`` (so DST may contain ``=``)."""
    src, equals, dst = spec.partition("=")
    if not equals or not src.strip() or not dst.strip():
        raise ConfigError(f"--map {spec!r}: expected SOURCE=TARGET with both names non-empty")
    return src, dst


def _split(name: str, delimiter: str | None) -> _Path:
    return tuple(name.split(delimiter)) if delimiter else (name,)


def _key(path: _Path) -> _Path:
    """The comparison key of a path: INBOX is case-insensitive, every other segment is not."""
    if path and path[0].upper() == INBOX:
        return (INBOX, *path[1:])
    return path


def _rank(folder: FolderInfo, delimiter: str | None) -> tuple[Role, int, int] | None:
    """The folder's role and its precedence (lower wins): by flag ``(0, 0)``, by name ``(1, n)``."""
    name = folder.name
    if name.upper() == INBOX:
        return Role.INBOX, 0, 0
    flagged = [low for flag in folder.flags if (low := flag.lower()) in _FLAG_ROLES]
    if flagged:
        return _FLAG_ROLES[min(flagged)], 0, 0  # the first in sorted order, whatever LIST's
    # Only a top-level name, or Courier's INBOX.Sent, names a role. Asked of every folder three
    # times a pass: a deep folder is told apart by its delimiters, without splitting or folding.
    leaf = name
    if delimiter and delimiter in name:
        head, _, leaf = name.partition(delimiter)
        if head.upper() != INBOX or delimiter in leaf:
            return None
    found = _NAME_ROLES.get(_fold(leaf))
    return None if found is None else (found[0], 1, found[1])


def role_of(folder: FolderInfo, delimiter: str | None) -> Role | None:
    """The role a folder qualifies for, from its SPECIAL-USE flags first, then its name.

    ``delimiter`` splits the name (``None``: a flat name); callers mostly pass ``folder.delimiter``.
    Several folders may qualify for one role: ``find_roles`` picks one.
    """
    ranked = _rank(folder, delimiter)
    return None if ranked is None else ranked[0]


def find_roles(folders: Sequence[FolderInfo]) -> dict[Role, FolderInfo]:
    """The one folder of each role on one side: flagged beats named, then table order, LIST order.

    Folders that cannot hold messages (``\\Noselect``, ``\\NonExistent``) hold no role.
    """
    return {role: ranked[0] for role, ranked in role_candidates(folders).items()}


def role_candidates(folders: Sequence[FolderInfo]) -> dict[Role, list[FolderInfo]]:
    """Every selectable folder that qualifies for each role, the winner (``find_roles``) first."""
    found: dict[Role, list[tuple[tuple[int, int, int], FolderInfo]]] = {}
    for index, folder in enumerate(folders):
        ranked = _rank(folder, folder.delimiter) if folder.selectable else None
        if ranked is not None:
            role, by_name, rank = ranked
            found.setdefault(role, []).append(((by_name, rank, index), folder))
    return {role: [f for _, f in sorted(c, key=lambda c: c[0])] for role, c in found.items()}


def _replacements(delimiter: str) -> tuple[str, ...]:
    """Stand-ins for the target's delimiter inside a name, in order of preference."""
    return tuple(c for c in "_-" if c != delimiter)


def _nonempty(path: _Path, delimiter: str) -> _Path:
    """A name made only of delimiters still needs a name on the target."""
    return path or (_replacements(delimiter)[0],)


def _translate(segments: Iterable[str], delimiter: str, replacement: str) -> _Placed:
    out: list[str] = []
    reasons: list[str] = []
    for segment in segments:
        if not segment:
            reasons.append("empty hierarchy level dropped")
        elif delimiter in segment:
            out.append(segment.replace(delimiter, replacement))
            reasons.append(
                f"{delimiter!r} is the target's hierarchy delimiter, replaced by {replacement!r}"
            )
        else:
            out.append(segment)
    return tuple(out), tuple(dict.fromkeys(reasons))


class _Placer:
    """The working state of one ``map_folders`` call: anchors, taken names, placed source paths."""

    def __init__(self, delimiter: str, maps: dict[tuple[str | None, _Path], _Path]) -> None:
        self.delimiter = delimiter
        self.replacements = _replacements(delimiter)
        self.maps = maps  # (source delimiter, source key) -> target path
        self.roles: dict[_Path, _Placed] = {}  # source key of a role folder -> its target
        self.taken: set[_Path] = set()  # target keys claimed by mapped source folders
        self.placed: dict[_Path, _Placed] = {}  # source key -> target path, reasons nobody reported

    def anchor(self, folder: FolderInfo, key: _Path) -> _Placed | None:
        mapped = self.maps.get((folder.delimiter, key))
        return (mapped, ()) if mapped is not None else self.roles.get(key)

    def place(self, folder: FolderInfo, key: _Path, *, claims: bool) -> _Placed:
        """Where ``folder`` goes; ``claims``: it will hold messages, so its name is taken."""
        placed = self.anchor(folder, key)
        if placed is None:
            placed = self._below(folder, key, claims=claims)
        if claims:
            self.taken.add(_key(placed[0]))
        self.placed[key] = (placed[0], () if claims else placed[1])
        return placed

    def _base(self, folder: FolderInfo, key: _Path) -> tuple[int, _Placed]:
        for depth in range(len(key) - 1, 0, -1):
            prefix = key[:depth]
            found = self.placed.get(prefix)
            if found is None:
                found = self.anchor(folder, prefix)
            if found is not None:
                return depth, found
        return 0, ((), ())

    def _below(self, folder: FolderInfo, key: _Path, *, claims: bool) -> _Placed:
        depth, (base, inherited) = self._base(folder, key)
        rest = folder.path[depth:]
        for replacement in self.replacements:
            tail, reasons = _translate(rest, self.delimiter, replacement)
            path = _nonempty(base + tail, self.delimiter)
            if not claims or _key(path) not in self.taken:
                return path, inherited + reasons
        tail, reasons = _translate(rest, self.delimiter, self.replacements[0])
        path = _nonempty(base + tail, self.delimiter)
        for n in itertools.count(2):
            candidate = (*path[:-1], f"{path[-1]} ({n})")
            if _key(candidate) not in self.taken:
                why = f"another source folder already goes to {self.delimiter.join(path)!r}"
                return candidate, (*inherited, *reasons, why)
        raise AssertionError  # pragma: no cover - itertools.count never ends


def _compile_maps(
    maps: Iterable[tuple[str, str]], source_delimiters: Iterable[str | None], delimiter: str
) -> dict[tuple[str | None, _Path], _Path]:
    problems: list[str] = []
    seen: dict[str, str] = {}
    for src, dst in maps:
        if seen.setdefault(src, dst) != dst:
            problems.append(f"--map {src!r} given twice, to {seen[src]!r} and {dst!r}")
        if "" in dst.split(delimiter):
            problems.append(f"--map target {dst!r} has an empty level (delimiter {delimiter!r})")
    if problems:
        raise ConfigError(problems)
    return {
        (d, _key(_split(src, d))): tuple(dst.split(delimiter))
        for d in set(source_delimiters)
        for src, dst in seen.items()
    }


def _parents_first(folders: Sequence[FolderInfo]) -> dict[_Path, FolderInfo]:
    """LIST order, except that a listed ancestor always comes before its descendants."""
    by_key: dict[_Path, FolderInfo] = {}
    for folder in folders:
        by_key.setdefault(_key(folder.path), folder)
    ordered: dict[_Path, FolderInfo] = {}
    for key in by_key:
        for prefix in (key[:depth] for depth in range(1, len(key) + 1)):
            if prefix in by_key:
                ordered.setdefault(prefix, by_key[prefix])
    return ordered


def _selected(name: str, options: MappingOptions) -> bool:
    if options.include and not any(p.search(name) for p in options.include):
        return False
    return not any(p.search(name) for p in options.exclude)


def _role_anchors(
    candidates: Mapping[Role, Sequence[FolderInfo]], target: Sequence[FolderInfo], delimiter: str
) -> dict[_Path, _Placed]:
    """Source role folders (``role_candidates``) -> the target's folder of that role, else the
    winner's translated name."""
    target_roles = find_roles(target)
    anchors: dict[_Path, _Placed] = {}
    for role, ranked in candidates.items():
        key = _key(ranked[0].path)
        if role is Role.INBOX:
            anchors[key] = ((INBOX,), ())
            continue
        if role in _VIRTUAL:
            continue
        if role in target_roles:
            anchors[key] = (tuple(target_roles[role].name.split(delimiter)), ())
        else:
            path, reasons = _translate(key, delimiter, _replacements(delimiter)[0])
            anchors[key] = (_nonempty(path, delimiter), reasons)
        anchors.update(_merged(role, ranked, anchors[key][0], delimiter))
    return anchors


def _merged(
    role: Role, ranked: Sequence[FolderInfo], path: _Path, delimiter: str
) -> dict[_Path, _Placed]:
    """The other folders of a role go where its winner goes: a flagged "Sent" and a "Sent Items"
    both land in the target's Sent folder, never in a second Sent folder beside it."""
    winner = ranked[0].name
    into = delimiter.join(path)
    why = f"also a {role.value.title()} folder, like {winner!r}: merged into {into!r}"
    return {_key(folder.path): (path, (why,)) for folder in ranked[1:]}


def _creations(
    mappings: Iterable[FolderMapping], target: Sequence[FolderInfo], delimiter: str
) -> tuple[str, ...]:
    """Missing ancestors and missing (or ``\\Noselect``) targets, parents first; never INBOX.

    An existing ``\\Noselect`` target folder is enough for its children, but one that a mapping
    targets directly must be created to hold messages (servers differ: the executor may see NO
    [ALREADYEXISTS] and should then treat the folder as present).
    """
    existing = {_key(tuple(f.name.split(delimiter))): f for f in target}
    create: dict[_Path, str] = {}
    for mapping in mappings:
        path = tuple(mapping.target.split(delimiter))
        for depth in range(1, len(path) + 1):
            key = _key(path[:depth])
            if key == (INBOX,) or key in create:
                continue
            have = existing.get(key)
            if have is None or (depth == len(path) and not have.selectable):
                create[key] = delimiter.join(path[:depth])
    return tuple(create.values())


def _subscriptions(
    mappings: Iterable[FolderMapping], target: Sequence[FolderInfo], delimiter: str
) -> tuple[str, ...]:
    """Targets of subscribed source folders, less those the target has subscribed already: a
    SUBSCRIBE costs a round trip, and a re-run would otherwise send one per folder every time."""
    done = {_key(tuple(f.name.split(delimiter))) for f in target if f.subscribed}
    wanted = (m.target for m in mappings if m.source.subscribed)
    return tuple(
        name for name in dict.fromkeys(wanted) if _key(tuple(name.split(delimiter))) not in done
    )


def map_folders(
    source: Sequence[FolderInfo],
    target: Sequence[FolderInfo],
    target_delimiter: str,
    options: MappingOptions = MappingOptions(),
) -> FolderPlan:
    """Plan where every source folder goes on the target (see the module docstring for the rules).

    Raises ``ConfigError`` when ``options.maps`` contradicts itself or names an impossible target.
    """
    if not target_delimiter:
        raise ValueError("the target delimiter must be a non-empty string")
    ordered = _parents_first(source)
    placer = _Placer(
        target_delimiter,
        _compile_maps(options.maps, (f.delimiter for f in source), target_delimiter),
    )
    candidates = role_candidates(source)
    placer.roles = _role_anchors(candidates, target, target_delimiter)
    roles = {_key(ranked[0].path): role for role, ranked in candidates.items()}
    mapped = {k: f.selectable and _selected(f.name, options) for k, f in ordered.items()}
    for key, folder in ordered.items():  # anchored folders take their names before anyone else
        anchored = placer.anchor(folder, key)
        if mapped[key] and anchored is not None:
            placer.taken.add(_key(anchored[0]))
    mappings: list[FolderMapping] = []
    map_reasons = dict(options.map_reasons)
    for key, folder in ordered.items():
        path, reasons = placer.place(folder, key, claims=mapped[key])
        if mapped[key]:
            why = "; ".join(dict.fromkeys(reasons)) or map_reasons.get(folder.name)
            mappings.append(FolderMapping(folder, target_delimiter.join(path), roles.get(key), why))
    return FolderPlan(
        mappings=tuple(mappings),
        create=_creations(mappings, target, target_delimiter),
        subscribe=_subscriptions(mappings, target, target_delimiter),
        excluded=tuple(f.name for k, f in ordered.items() if f.selectable and not mapped[k]),
    )
