"""Tokens from an external command: it prints the token, or ``{"access_token", "expires_in"}`` JSON."""

from __future__ import annotations

import json
import shlex
import subprocess

from mailferry.adapters.oauth.tokens import Grant, GrantSource, grant_from_json
from mailferry.domain.errors import AuthError, ConfigError, ConnectError

COMMAND_TIMEOUT = 60.0


def command_grant(command: str, *, timeout: float = COMMAND_TIMEOUT) -> GrantSource:
    """Run ``command`` (split like a shell would, but run without one) and read the token it prints.

    Its stdout is either the token (first non-empty line) or JSON ``{"access_token": ...,
    "expires_in": seconds}``. It is run again for every refresh.
    """
    argv = shlex_split(command)

    def fetch(force: bool) -> Grant:  # noqa: ARG001 - the command has no cache of ours to skip
        try:
            done = subprocess.run(  # the user's own command, without a shell
                argv, capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
            )
        except FileNotFoundError:
            raise ConfigError(f"token command {argv[0]!r} not found") from None
        except subprocess.TimeoutExpired:
            raise ConnectError(
                f"token command {argv[0]!r} gave no token within {timeout:g}s"
            ) from None
        except OSError as exc:
            raise ConfigError(f"token command {argv[0]!r} cannot run: {exc.strerror}") from None
        if done.returncode != 0:
            said = done.stderr.decode("utf-8", "replace").strip().splitlines()
            detail = f": {said[-1][:200]}" if said else ""
            raise AuthError(f"token command {argv[0]!r} exited with {done.returncode}{detail}")
        return _parse_command_output(done.stdout.decode("utf-8", "replace"))

    return fetch


def _parse_command_output(text: str) -> Grant:
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            raise AuthError("the token command printed JSON that does not parse") from None
        return grant_from_json(data, "the token command")
    lines = [line.strip() for line in stripped.splitlines() if line.strip()]
    if not lines:
        raise AuthError("the token command printed no token")
    return Grant(lines[0])


def shlex_split(command: str) -> list[str]:
    """The token command's argv; an empty or badly quoted command is a ConfigError."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(f"the token command does not parse: {exc}") from None
    if not argv:
        raise ConfigError("the token command is empty")
    return argv
