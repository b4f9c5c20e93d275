"""The batch CSV: Exchange's IMAP-migration format, validated whole before anything starts.

Columns (names case-insensitive, in any order, a UTF-8 BOM tolerated)::

    EmailAddress     the target mailbox (required)
    UserName         the source login (required)
    Password         the source password (required unless the source endpoint has an admin login)
    TargetUserName   the target login, when it is not EmailAddress (optional)
    TargetPassword   the target password (required unless the target endpoint has an admin login)
    IncludeFolders   source folders to copy: regular expressions separated by ";" (optional)
    ExcludeFolders   source folders to skip, same form (optional)

Every problem is reported with its line number (the line a record starts on, counting the header
as line 1), all of them however many (issue #17: a file of 10,000 rows is fixed in one go, not 50
lines at a time), and the whole file is refused: a half-imported company is worse than none.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass, field

from mailferry.domain.errors import ConfigError

MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 50_000

REQUIRED = ("emailaddress", "username", "password")
OPTIONAL = ("targetusername", "targetpassword", "includefolders", "excludefolders")
CANONICAL = {
    "emailaddress": "EmailAddress",
    "username": "UserName",
    "password": "Password",
    "targetusername": "TargetUserName",
    "targetpassword": "TargetPassword",
    "includefolders": "IncludeFolders",
    "excludefolders": "ExcludeFolders",
}

# A practical address check: one @, a local part without spaces or controls, a dotted domain of
# letters (any script), digits and hyphens. Not RFC 5322's full grammar, on purpose.
_LOCAL = re.compile(r"^[^\s@\"(),:;<>\[\\\]]{1,64}$")
_LABEL = re.compile(r"^(?!-)[\w-]{1,63}(?<!-)$", re.UNICODE)


@dataclass(frozen=True)
class CsvRow:
    """One mailbox of a batch. Passwords are plain here only until the service encrypts them."""

    line: int
    email: str
    source_user: str
    source_password: str = field(repr=False)
    target_user: str
    target_password: str = field(repr=False)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class CsvRules:
    """What the endpoints demand of each row."""

    source_password_required: bool = True
    target_password_required: bool = True


def parse_batch_csv(data: bytes, rules: CsvRules | None = None) -> list[CsvRow]:
    """The rows of a batch CSV, or ConfigError listing every problem found."""
    rules = rules or CsvRules()
    if len(data) > MAX_BYTES:
        raise ConfigError(f"CSV is {len(data)} bytes; the limit is {MAX_BYTES} (10 MB)")
    text = _decode(data)
    problems: list[str] = []
    rows = _parse(text, rules, problems)
    if not rows and not problems:
        problems.append("the CSV has no mailbox rows")
    if problems:
        raise ConfigError(problems)  # every one: a file of 10,000 rows is fixed in one go
    return rows


def _decode(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ConfigError(
                "CSV: starts with a UTF-16 byte-order mark but is not UTF-16"
            ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
            "save the file as 'CSV UTF-8'"
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ConfigError(f"line {line}: contains a NUL character; this is not a text CSV")
    return text


def _parse(text: str, rules: CsvRules, problems: list[str]) -> list[CsvRow]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows: list[CsvRow] = []
    seen: dict[str, int] = {}
    start = 1
    try:
        for record in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in record):
                continue
            if header is None:
                header = _header(record, line, problems)
                if header is None:
                    return []
                continue
            if len(rows) >= MAX_ROWS:
                problems.append(f"line {line}: more than {MAX_ROWS} mailbox rows in one batch")
                return rows
            row = _row(header, record, line, rules, problems)
            if row is not None and _unique(row, seen, problems):
                rows.append(row)
    except csv.Error as exc:
        problems.append(f"line {reader.line_num}: {exc}")
    if header is None and not problems:
        problems.append("the CSV is empty: expected a header EmailAddress,UserName,Password")
    return rows


def _header(record: list[str], line: int, problems: list[str]) -> list[str] | None:
    names = [cell.strip().lower() for cell in record]
    bad = False
    for name, cell in zip(names, record, strict=True):
        if name not in CANONICAL:
            problems.append(f"line {line}: unknown column {cell.strip()!r}")
            bad = True
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(f"line {line}: column {CANONICAL.get(name, name)} appears twice")
        bad = True
    for name in REQUIRED:
        if name not in names:
            problems.append(f"line {line}: missing column {CANONICAL[name]}")
            bad = True
    return None if bad else names


def _row(
    header: list[str], record: list[str], line: int, rules: CsvRules, problems: list[str]
) -> CsvRow | None:
    if len(record) != len(header):
        problems.append(f"line {line}: {len(record)} fields, the header has {len(header)}")
        return None
    cells = dict(zip(header, record, strict=True))
    found: list[str] = []
    email = cells["emailaddress"].strip()
    if not email:
        found.append("EmailAddress is empty")
    elif not valid_address(email):
        found.append(f"EmailAddress {email!r} is not a valid address")
    source_user = cells["username"].strip()
    if not source_user:
        found.append("UserName is empty")
    if rules.source_password_required and not cells["password"]:
        found.append("Password is empty (and the source endpoint has no admin login)")
    target_password = cells.get("targetpassword", "")
    if rules.target_password_required and not target_password:
        found.append("TargetPassword is empty (and the target endpoint has no admin login)")
    include = _patterns(cells.get("includefolders", ""), "IncludeFolders", found)
    exclude = _patterns(cells.get("excludefolders", ""), "ExcludeFolders", found)
    for text in [email, source_user, cells.get("targetusername", "")]:
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
            found.append("a name contains control characters")
            break
    if found:
        problems.extend(f"line {line}: {problem}" for problem in found)
        return None
    return CsvRow(
        line=line,
        email=email,
        source_user=source_user,
        source_password=cells["password"],
        target_user=cells.get("targetusername", "").strip() or email,
        target_password=target_password,
        include=include,
        exclude=exclude,
    )


def _unique(row: CsvRow, seen: dict[str, int], problems: list[str]) -> bool:
    key = row.email.casefold()
    if key in seen:
        problems.append(
            f"line {row.line}: duplicate target {row.email!r} (first on line {seen[key]})"
        )
        return False
    seen[key] = row.line
    return True


def _patterns(cell: str, column: str, found: list[str]) -> tuple[str, ...]:
    out = []
    for part in cell.split(";"):
        pattern = part.strip()
        if not pattern:
            continue
        try:
            re.compile(pattern)
        except re.error as exc:
            found.append(f"{column} {pattern!r} is not a valid regular expression ({exc})")
            continue
        out.append(pattern)
    return tuple(out)


def valid_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    if not at or len(address) > 254 or not _LOCAL.match(local) or ".." in local:
        return False
    labels = domain.split(".")
    return len(labels) >= 2 and all(_LABEL.match(label) for label in labels)
