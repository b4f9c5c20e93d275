"""The first commands of a logged-in session, ENABLE CONDSTORE and NAMESPACE, in one round trip.

imapclient sends them one after the other and waits for each answer: two round trips per session
(a run opens several per side) before any work starts. Neither depends on the other's answer, so
both are written at once on the raw pipeline (``wire.Pipeline``) and their answers read together.
"""

from __future__ import annotations

from imapclient.imap_utf7 import decode as decode_utf7
from imapclient.response_parser import parse_response

from mailferry.adapters.imap.wire import LITERAL_MARK, Pipeline, Tagged
from mailferry.domain.errors import ConnectError, MailferryError
from mailferry.domain.responses import slow_down

# The personal namespace's first (prefix, delimiter); the delimiter None where the server says NIL.
Personal = tuple[str, str | None]


def enable_and_namespace(pipeline: Pipeline, capabilities: frozenset[str]) -> Personal | None:
    """``ENABLE CONDSTORE`` where offered (RFC 7162: MODSEQs in every FETCH from then on) and
    ``NAMESPACE`` where offered, written together; the personal namespace, or None without
    NAMESPACE (or without a personal one). A refusal of either fails the session, as when each
    was sent alone."""
    commands: list[bytes] = []
    if {"CONDSTORE", "ENABLE"} <= capabilities:
        commands.append(b"ENABLE CONDSTORE")
    if "NAMESPACE" in capabilities:
        commands.append(b"NAMESPACE")
    if not commands:
        return None
    tags = [pipeline.next_tag() for _ in commands]
    pipeline.send(b"".join(b"%s %s\r\n" % pair for pair in zip(tags, commands, strict=True)))
    said: list[tuple[bytes, list[bytes]]] = []

    def keep(line: bytes, literals: list[bytes]) -> None:
        if line[:12].upper() == b"* NAMESPACE ":
            said.append((line[12:].rstrip(b"\r\n"), literals))

    answers = pipeline.wait_tagged(tags, on_untagged=keep)
    for command, tag in zip(commands, tags, strict=True):
        _check(command, answers[tag])
    if "NAMESPACE" not in capabilities or not said:
        return None
    return personal_namespace(*said[-1])


def personal_namespace(line: bytes, literals: list[bytes]) -> Personal | None:
    """The first personal namespace of a NAMESPACE answer (what follows ``* NAMESPACE ``, each
    literal in it read by the pipeline as ``{literal}``), the prefix decoded from modified UTF-7
    as imapclient's ``namespace`` did."""
    parts = line.split(LITERAL_MARK)
    data: list[bytes | tuple[bytes, bytes]] = [
        (part + b"{%d}" % len(literal), literal)
        for part, literal in zip(parts, literals, strict=False)
    ]
    data.append(parts[-1])
    personal = parse_response(data)[0]
    if not personal:
        return None
    prefix, delimiter = personal[0][0], personal[0][1]
    return (
        decode_utf7(prefix) if prefix else "",
        delimiter.decode("ascii", "replace") if isinstance(delimiter, bytes) else None,
    )


def _check(command: bytes, answer: Tagged) -> None:
    if answer.status == "OK":
        return
    said = f"{command.decode()} {answer.status}: {answer.text.decode('utf-8', 'replace').strip()}"
    refused: MailferryError = slow_down(said, "server asks to slow down") or ConnectError(
        f"server refused: {said}"
    )
    raise refused
