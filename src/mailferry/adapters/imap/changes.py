"""How many messages changed since a mod-sequence, in one short answer (RFC 4731 ESEARCH with
RFC 7162's MODSEQ search key): ``UID SEARCH RETURN (COUNT) MODSEQ n``.

Why: an incremental pass on a CONDSTORE source reads the flags changed since the last pass in one
``UID FETCH 1:* (FLAGS) (CHANGEDSINCE n)``. That answer is as long as the changes: a user who
marked a million-message folder read makes it a million rows, held at once (imaplib keeps a whole
answer). Counted first, a big folder with many changes is walked in windows instead, as a pass
without CONDSTORE is, and memory stays flat.
"""

from __future__ import annotations

import re

from mailferry.adapters.imap.wire import Pipeline

_COUNT = re.compile(rb"^\* ESEARCH .*\bCOUNT (\d+)", re.IGNORECASE)


def count_changed(pipeline: Pipeline, since: int) -> int | None:
    """Messages of the selected folder whose mod-sequence is above ``since``; None when the server
    did not say (a refusal, no COUNT in its answer)."""
    found: list[int] = []

    def keep(line: bytes, _literals: list[bytes]) -> None:
        if (match := _COUNT.match(line)) is not None:
            found.append(int(match.group(1)))

    tag = pipeline.next_tag()
    # MODSEQ n matches a mod-sequence >= n; CHANGEDSINCE n asks for those > n.
    pipeline.send(b"%s UID SEARCH RETURN (COUNT) MODSEQ %d\r\n" % (tag, since + 1))
    answer = pipeline.wait_tagged([tag], on_untagged=keep)[tag]
    if answer.status != "OK" or not found:
        return None
    return found[-1]
