"""The first commands of a logged-in session, in as few round trips as the server allows.

imapclient sends them one after the other and waits for each answer: ENABLE CONDSTORE, NAMESPACE,
and CAPABILITY where the login did not say (Courier, Exchange) cost a round trip each per session
(a run opens several per side) before any work starts. None depends on another's answer, so they
are written at once on the raw pipeline (``wire.Pipeline``) and their answers read together.
"""

from __future__ import annotations

from dataclasses import dataclass

from imapclient.imap_utf7 import decode as decode_utf7
from imapclient.response_parser import parse_response

from mailferry.adapters.imap.wire import LITERAL_MARK, Pipeline, Tagged
from mailferry.domain.errors import ConnectError, MailferryError
from mailferry.domain.responses import slow_down

# The personal namespace's first (prefix, delimiter); the delimiter None where the server says NIL.
Personal = tuple[str, str | None]
# Untagged answers kept, by name: the line after ``* NAME `` and the literals in it.
_Said = dict[bytes, tuple[bytes, list[bytes]]]


@dataclass(frozen=True)
class Namespaces:
    """A NAMESPACE answer read already, with the CAPABILITY after login: its personal namespace
    (None: the server has none)."""

    personal: Personal | None


def capabilities_and_namespace(
    pipeline: Pipeline, *, namespace: bool
) -> tuple[tuple[bytes, ...], Namespaces | None]:
    """CAPABILITY after a login that did not say them, and with it NAMESPACE when the server
    announced NAMESPACE before login (``namespace``): the round trip NAMESPACE would cost on its
    own. Its answer counts only where the post-login list offers NAMESPACE; a refusal of it (BAD
    from a server without it) is no error, a refusal of CAPABILITY fails the session."""
    commands = [b"CAPABILITY", b"NAMESPACE"] if namespace else [b"CAPABILITY"]
    answers, said = _exchange(pipeline, commands)
    _check(commands[0], answers[0])
    if b"CAPABILITY" not in said:
        raise ConnectError("the server sent no capabilities after login")
    capabilities = tuple(said[b"CAPABILITY"][0].upper().split())
    if not namespace or answers[1].status != "OK" or b"NAMESPACE" not in capabilities:
        return capabilities, None
    found = said.get(b"NAMESPACE")
    return capabilities, Namespaces(personal_namespace(*found) if found else None)


def enable_and_namespace(
    pipeline: Pipeline, capabilities: frozenset[str], known: Namespaces | None = None
) -> Personal | None:
    """``ENABLE CONDSTORE`` where offered (RFC 7162: MODSEQs in every FETCH from then on) and
    ``NAMESPACE`` where offered and not ``known`` already, written together; the personal
    namespace, or None without NAMESPACE (or without a personal one). A refusal of either fails
    the session, as when each was sent alone."""
    commands: list[bytes] = []
    if {"CONDSTORE", "ENABLE"} <= capabilities:
        commands.append(b"ENABLE CONDSTORE")
    if "NAMESPACE" in capabilities and known is None:
        commands.append(b"NAMESPACE")
    said: _Said = {}
    if commands:
        answers, said = _exchange(pipeline, commands)
        for command, answer in zip(commands, answers, strict=True):
            _check(command, answer)
    if known is not None:
        return known.personal
    if "NAMESPACE" not in capabilities or b"NAMESPACE" not in said:
        return None
    return personal_namespace(*said[b"NAMESPACE"])


def _exchange(pipeline: Pipeline, commands: list[bytes]) -> tuple[list[Tagged], _Said]:
    """``commands`` written at once; their tagged answers in order, and the last CAPABILITY and
    NAMESPACE lines the server sent meanwhile."""
    tags = [pipeline.next_tag() for _ in commands]
    pipeline.send(b"".join(b"%s %s\r\n" % pair for pair in zip(tags, commands, strict=True)))
    said: _Said = {}

    def keep(line: bytes, literals: list[bytes]) -> None:
        name, _, rest = line[2:].partition(b" ")
        if line.startswith(b"* ") and name.upper() in {b"CAPABILITY", b"NAMESPACE"}:
            said[name.upper()] = (rest.rstrip(b"\r\n"), literals)

    answers = pipeline.wait_tagged(tags, on_untagged=keep)
    return [answers[tag] for tag in tags], said


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
