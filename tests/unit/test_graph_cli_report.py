"""What ``mailferry sync`` prints of a Graph pass in its text output (not ``--json``)."""

from __future__ import annotations

import pytest

from mailferry.cli.graph import print_mailbox_summary
from mailferry.domain.mailboxplan import NOT_RECOGNISABLE
from mailferry.domain.mailboxreport import EntryProblem, MailboxSummary
from mailferry.domain.workloads import Workload


def test_a_copy_that_may_be_a_second_one_is_printed_not_only_in_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary = MailboxSummary()
    summary.section(Workload.MAIL).copied = 1
    summary.doubt(Workload.MAIL, EntryProblem("Inbox", "src-7", NOT_RECOGNISABLE))
    print_mailbox_summary(summary)
    printed = capsys.readouterr()
    assert "1 copied" in printed.out
    assert f"CHECK Inbox src-7: {NOT_RECOGNISABLE}" in printed.err.replace("\n", " ")
