"""The logging set-up: both formats render structlog events and plain ``logging`` records with their
fields and bound context, and never a secret-named field's value."""

from __future__ import annotations

import io
import json
import logging

import pytest
from click.testing import CliRunner

from mailferry.cli.app import main
from mailferry.logs import bound_context, configure, get_logger


@pytest.fixture
def stream():
    buffer = io.StringIO()
    yield buffer
    configure("warning", "text")  # back to the defaults for the tests that follow


def _emit() -> None:
    with bound_context(batch="b1", mailbox="ann@example.com"):
        get_logger("mailferry.migrate").bind(folder="INBOX").info(
            "message.copied", uid=7, password="hunter2", nested={"access_token": "tok-1"}
        )
        logging.getLogger("mailferry.web").warning(
            "login.refused", extra={"client": "10.0.0.9", "Authorization": "Bearer tok-2"}
        )
    logging.getLogger("imapclient").info("third-party chatter")


def test_json_records_carry_fields_and_context_without_secrets(stream):
    configure("debug", "json", stream)
    _emit()
    text = stream.getvalue()
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["event"] for r in records] == ["message.copied", "login.refused"]
    copied, refused = records
    assert copied["batch"] == "b1" and copied["mailbox"] == "ann@example.com"
    assert copied["folder"] == "INBOX" and copied["uid"] == 7 and copied["level"] == "info"
    assert refused["client"] == "10.0.0.9" and refused["batch"] == "b1"
    assert refused["logger"] == "mailferry.web" and "timestamp" in refused
    for secret in ("hunter2", "tok-1", "tok-2"):
        assert secret not in text
    assert copied["password"] == "[redacted]"
    assert copied["nested"] == {"access_token": "[redacted]"}


def test_text_lines_carry_fields_and_level_filters(stream):
    configure("info", "text", stream)
    _emit()
    get_logger("mailferry.migrate").debug("not.shown")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "message.copied" in lines[0] and "uid=7" in lines[0] and "folder=INBOX" in lines[0]
    assert "login.refused" in lines[1] and "client=10.0.0.9" in lines[1]
    assert "hunter2" not in stream.getvalue() and "tok-2" not in stream.getvalue()


def test_cli_options_configure_logging(monkeypatch):
    runner = CliRunner()
    result = runner.invoke(main, ["--log-level", "bogus", "endpoint", "--help"])
    assert result.exit_code == 2
    monkeypatch.setenv("MAILFERRY_LOG_LEVEL", "debug")
    result = runner.invoke(main, ["--log-format", "json", "endpoint", "--help"])
    assert result.exit_code == 0
    assert logging.getLogger("mailferry").getEffectiveLevel() == logging.DEBUG
    configure("warning", "text")
