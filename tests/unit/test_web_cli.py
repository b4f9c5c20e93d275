"""`mailferry admin init`, `token create/revoke` and the web options of `serve` (no sockets:
every case here stops before binding)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from mailferry.cli.app import main
from mailferry.web.credentials import AuthStore
from mailferry.web.server import Listen
from tests.unit.web_support import FAST


def test_admin_init_and_tokens(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILFERRY_ADMIN_PASSWORD", raising=False)
    state = tmp_path / "state.sqlite3"
    secret = tmp_path / "pw"
    secret.write_text("a fine long password\n")
    runner = CliRunner()
    result = runner.invoke(
        main, ["admin", "init", "--password-file", str(secret), "--state", str(state)]
    )
    assert result.exit_code == 0, result.output
    assert "a fine long password" not in result.output
    auth = AuthStore.open_sqlite(state, cost=FAST)
    assert auth.check_admin("a fine long password")
    assert not auth.check_admin("a fine long passwort")

    short = tmp_path / "short"
    short.write_text("short")
    result = runner.invoke(
        main, ["admin", "init", "--password-file", str(short), "--state", str(state)]
    )
    assert result.exit_code == 2
    assert "at least 12" in result.output

    result = runner.invoke(main, ["token", "create", "ci", "--state", str(state)])
    assert result.exit_code == 0
    token = result.output.strip()
    assert token.startswith("mft_")
    assert auth.check_token(token) == "ci"
    assert runner.invoke(main, ["token", "create", "ci", "--state", str(state)]).exit_code == 2
    assert runner.invoke(main, ["token", "revoke", "ci", "--state", str(state)]).exit_code == 0
    assert auth.check_token(token) is None
    assert runner.invoke(main, ["token", "revoke", "ci", "--state", str(state)]).exit_code == 2
    auth.close()


def test_serve_refuses_remote_binding_without_tls_or_flag(tmp_path):
    result = CliRunner().invoke(
        main,
        ["serve", "--host", "0.0.0.0", "--state", str(tmp_path / "s.sqlite3")],  # noqa: S104
    )
    assert result.exit_code == 2
    assert "--allow-remote" in result.output


def test_listen_rules():
    assert Listen().check() == []
    assert Listen().warning() is None
    remote = Listen(host="192.0.2.1", allow_remote=True)
    assert remote.check() == []
    assert "TLS reverse proxy" in (remote.warning() or "")
    assert Listen(host="192.0.2.1").check()
    assert Listen(tls_cert=Path("/nonexistent")).check()
    assert Listen(host="::1", port=9).url() == "http://[::1]:9/"
