"""The `mailferry` command as an administrator runs it: real processes, real Dovecot, exit codes, messages."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from mailferry.sandbox.dovecot import DovecotServer

pytestmark = pytest.mark.e2e


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MAILFERRY_")}
    return subprocess.run(
        [sys.executable, "-m", "mailferry.cli", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    with DovecotServer(tmp_path_factory.mktemp("tls"), delimiter=".", ssl=True) as server:
        yield server


@pytest.fixture
def accounts(dovecot_slash, dovecot_dot, make_user, tmp_path):
    su, sp = make_user(dovecot_slash)
    tu, tp = make_user(dovecot_dot)
    env = {"MAILFERRY_SOURCE_PASSWORD": sp, "MAILFERRY_TARGET_PASSWORD": tp}
    src = f"imap://{su}@127.0.0.1:{dovecot_slash.port}"
    dst = f"imap://{tu}@127.0.0.1:{dovecot_dot.port}"
    return src, dst, env, tmp_path / "state.sqlite3"


def assert_one_clear_line(result, *needles):
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_sync_and_verify_succeed_with_json(accounts):
    src, dst, env, state = accounts
    result = run("sync", src, dst, "--state", str(state), "--json", env=env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary) >= {
        "folders",
        "messages_copied",
        "messages_skipped_existing",
        "messages_failed",
        "bytes_copied",
        "flags_updated",
        "seconds",
        "failures",
    }
    assert state.exists()
    assert run("verify", src, dst, env=env).returncode == 0


def test_wrong_password_exits_3_without_echoing_it(accounts):
    src, dst, env, state = accounts
    env = {**env, "MAILFERRY_SOURCE_PASSWORD": "not-the-password-4711"}
    result = run("sync", src, dst, "--state", str(state), env=env)
    assert result.returncode == 3
    assert_one_clear_line(result, "login refused")
    assert "4711" not in result.stderr + result.stdout


def test_password_file_is_read(accounts, tmp_path):
    src, dst, env, state = accounts
    secret = tmp_path / "pw"
    secret.write_text(env.pop("MAILFERRY_SOURCE_PASSWORD") + "\n")
    result = run(
        "sync", src, dst, "--state", str(state), "--source-password-file", str(secret), env=env
    )
    assert result.returncode == 0, result.stderr


def test_refused_port_exits_3(accounts):
    _src, dst, env, state = accounts
    result = run("sync", f"imap://u@127.0.0.1:{closed_port()}", dst, "--state", str(state), env=env)
    assert result.returncode == 3
    assert_one_clear_line(result, "cannot connect", "refused")


def test_unknown_host_exits_3(accounts):
    _src, dst, env, state = accounts
    result = run("sync", "imaps://u@no-such-host.invalid", dst, "--state", str(state), env=env)
    assert result.returncode == 3
    assert_one_clear_line(result, "no-such-host.invalid")


def test_missing_password_without_a_terminal_exits_2(accounts):
    src, dst, env, state = accounts
    del env["MAILFERRY_TARGET_PASSWORD"]
    result = run("sync", src, dst, "--state", str(state), env=env)
    assert result.returncode == 2
    assert_one_clear_line(result, "MAILFERRY_TARGET_PASSWORD")


def test_usage_errors_exit_2_and_are_all_reported(accounts):
    _src, _dst, env, state = accounts
    result = run(
        "sync",
        "pop3://x@h",
        "imap://u@mail.example.com",
        "--since",
        "yesterday",
        "--include",
        "(",
        "--state",
        str(state),
        env=env,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for needle in ("pop3://x@h", "--allow-plaintext", "--since", "--include"):
        assert needle in result.stderr


def test_foreign_state_file_exits_2(accounts, tmp_path):
    src, dst, env, _state = accounts
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database at all" * 100)
    result = run("sync", src, dst, "--state", str(junk), env=env)
    assert result.returncode == 2
    assert_one_clear_line(result, "state database")


def test_self_signed_certificate_is_refused_then_trusted_with_ca_file(
    tls_server, dovecot_dot, make_user, tmp_path
):
    su, sp = make_user(tls_server)
    tu, tp = make_user(dovecot_dot)
    env = {"MAILFERRY_SOURCE_PASSWORD": sp, "MAILFERRY_TARGET_PASSWORD": tp}
    src = f"imaps://{su}@127.0.0.1:{tls_server.ssl_port}"
    dst = f"imap://{tu}@127.0.0.1:{dovecot_dot.port}"
    state = tmp_path / "s.db"
    refused = run("sync", src, dst, "--state", str(state), env=env)
    assert refused.returncode == 3
    assert_one_clear_line(refused, "not trusted", "--ca-file")
    trusted = run(
        "sync",
        src,
        dst,
        "--state",
        str(state),
        "--source-ca-file",
        str(tls_server.ca_file),
        env=env,
    )
    assert trusted.returncode == 0, trusted.stderr


def _other_ca(directory):
    key, cert = directory / "other.key", directory / "other.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=other-ca", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert


def test_ca_file_trusts_both_sides_and_per_side_options_win(tls_server, make_user, tmp_path):
    su, sp = make_user(tls_server)
    tu, tp = make_user(tls_server)
    env = {"MAILFERRY_SOURCE_PASSWORD": sp, "MAILFERRY_TARGET_PASSWORD": tp}
    src = f"imaps://{su}@127.0.0.1:{tls_server.ssl_port}"
    dst = f"imaps://{tu}@127.0.0.1:{tls_server.ssl_port}"
    ca, other = str(tls_server.ca_file), str(_other_ca(tmp_path))
    for command in ("sync", "verify"):
        result = run(command, src, dst, "--state", str(tmp_path / "s.db"), "--ca-file", ca, env=env)
        assert result.returncode == 0, result.stderr
    # the per-side option wins over --ca-file: the target trusts the wrong CA and is refused
    refused = run("verify", src, dst, "--ca-file", ca, "--target-ca-file", other, env=env)
    assert refused.returncode == 3
    assert_one_clear_line(refused, "not trusted")
    trusted = run("verify", src, dst, "--ca-file", other, "--source-ca-file", ca,
                  "--target-ca-file", ca, env=env)  # fmt: skip
    assert trusted.returncode == 0, trusted.stderr


def test_help_lists_both_commands():
    result = run("--help")
    assert result.returncode == 0
    assert "sync" in result.stdout and "verify" in result.stdout
