"""A throwaway Dovecot IMAP server on 127.0.0.1, configured and owned by one Python object.

``DovecotServer(root)`` writes a self-contained config under ``root`` (runtime dir, state, log,
passwd-files, mail), picks free ports, runs ``dovecot -F -c CONF`` as a child process and stops it
with SIGTERM on exit. It expects to run as root (as in CI): mail then belongs to ``nobody:nogroup``,
login processes run as ``dovenull`` and auth as ``dovecot``.

Users live in a passwd-file that Dovecot re-reads when it changes, so ``add_user`` and
``set_quota`` take effect without a restart. A master user (``master_user``/``master_password``)
can log in as anyone, with SASL PLAIN authzid or with the ``user*master`` login form.

Why one module of 400+ lines: one server object, its configuration written whole (auth, namespaces,
TLS, quota, OAuth2), its users and its admin commands; test infrastructure, not shipped.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from mailferry.sandbox.lifecycle import Service

DEFAULT_SPECIAL_USE: dict[str, str] = {
    "Sent": "\\Sent",
    "Drafts": "\\Drafts",
    "Trash": "\\Trash",
    "Junk": "\\Junk",
}
HOST = "127.0.0.1"
START_TIMEOUT = 20.0
# Dovecot's master takes about 1 s to stop after SIGTERM, up to 6 s just after start-up; past
# this its whole process group is killed (its children outlive a killed master otherwise).
STOP_TIMEOUT = 3.0
# Unix socket paths are limited to 108 bytes; Dovecot's longest socket name under base_dir is
# about 30 bytes, so a longer root puts base_dir in a short directory under /tmp.
MAX_BASE_DIR = 70
MAIL_USER = "nobody"
MAIL_GROUP = "nogroup"


class SandboxError(RuntimeError):
    """The sandbox server could not be set up, started or queried."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the usual, tiny race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _program(name: str) -> str:
    """``dovecot`` and ``doveadm`` live in /usr/sbin and /usr/bin, not always on PATH."""
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and Path(candidate).exists():
            return candidate
    raise SandboxError(f"{name} not found; run scripts/install (Debian package dovecot-imapd)")


def _check_field(kind: str, value: str, forbidden: str = ':\n\r"') -> None:
    if not value or any(c in value for c in forbidden) or value != value.strip():
        raise SandboxError(f"{kind} {value!r} cannot go into a passwd-file")


def _traversable(path: Path) -> bool:
    """Can the unprivileged Dovecot users (nobody, dovecot) walk down to ``path``?"""
    return all(directory.stat().st_mode & 0o001 for directory in [path, *path.parents])


def _self_signed_cert(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-nodes", "-days", "3650",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    key.chmod(0o600)
    return cert, key


class DovecotServer(Service):
    """A Dovecot instance for one test session; use it as a context manager."""

    host = HOST

    def __init__(
        self,
        root: Path,
        *,
        delimiter: str = ".",
        special_use: dict[str, str] | None = None,
        auto_create: bool = True,
        capability: str | None = None,
        quota_bytes: int | None = None,
        ssl: bool = False,
        oauth2_introspection_url: str | None = None,
        oauth2_username_format: str | None = None,
        prefix: str = "",
    ) -> None:
        if delimiter not in {".", "/"}:
            raise SandboxError(f"delimiter must be '.' or '/', not {delimiter!r}")
        self.root = root.resolve()
        self.delimiter = delimiter
        # The inbox namespace's prefix: "INBOX." gives NAMESPACE (("INBOX." ".")), as on Courier.
        if prefix and (prefix != "INBOX" + delimiter):
            raise SandboxError(f"prefix must be '' or 'INBOX{delimiter}', not {prefix!r}")
        self.prefix = prefix
        self.special_use = DEFAULT_SPECIAL_USE if special_use is None else dict(special_use)
        self.auto_create = auto_create
        self.capability = capability
        self.quota_bytes = quota_bytes
        self.ssl = ssl
        # Also accept SASL XOAUTH2/OAUTHBEARER, checking each token with ``POST token=TOKEN`` to this
        # URL; the answer is RFC 7662 style, ``{"active": true, "username": ...}``, and the username
        # must be the login's.
        self.oauth2_introspection_url = oauth2_introspection_url
        # Dovecot's ``username_format`` for that check: a constant (e.g. "tenant-app") makes every
        # login name match an app token whose introspected username is that constant, as Exchange
        # Online's app-only tokens serve every mailbox the app was given (the SASL user).
        self.oauth2_username_format = oauth2_username_format
        self.master_user = "master"
        self.master_password = secrets.token_hex(8)
        self.conf_path = self.root / "dovecot.conf"
        self.log_path = self.root / "dovecot.log"
        self.stderr_path = self.root / "dovecot.stderr"
        self.port = 0
        self._ssl_port: int | None = None
        self._ca_file: Path | None = None
        self._data_dir: Path | None = None
        self._own_data_dir = False
        self._process: subprocess.Popen[bytes] | None = None

    # -- properties ---------------------------------------------------------------------------

    @property
    def ssl_port(self) -> int:
        if self._ssl_port is None:
            raise SandboxError("this server was started without ssl=True")
        return self._ssl_port

    @property
    def ca_file(self) -> Path:
        if self._ca_file is None:
            raise SandboxError("this server was started without ssl=True")
        return self._ca_file

    @property
    def data_dir(self) -> Path:
        """Where mail (``home/USER/Maildir``), passwd-files and sockets live: ``root`` or /tmp.

        pytest's temp directories sit under a 0700 directory that another pytest session may
        reset at any time, so whenever ``root`` is not reachable for the ``nobody`` and
        ``dovecot`` users (or is too long for socket paths), the data goes to a private
        directory under /tmp instead, linked as ``root/data`` and removed by ``stop()``.
        """
        if self._data_dir is None:
            raise SandboxError("server not started")
        return self._data_dir

    @property
    def users_dir(self) -> Path:
        return self.data_dir / "users"

    @property
    def masters_path(self) -> Path:
        return self.data_dir / "masters"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_text(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.stderr_path, self.log_path)]
        return "".join(p for p in parts if p)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._process is not None:
            raise SandboxError("server already started")
        if os.geteuid() != 0:
            # TODO: a non-root variant (all users = current user, no chroots) if ever needed.
            raise SandboxError("DovecotServer must run as root (see STYLE.md)")
        self._prepare_files()
        self.conf_path.write_text(self._config())
        with self.stderr_path.open("wb") as stderr:
            self._process = subprocess.Popen(
                [_program("dovecot"), "-F", "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,  # its own process group, to kill children if need be
            )
        try:
            self._wait_until_accepting()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._own_data_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._own_data_dir = False

    def _wait_until_accepting(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        ports = [self.port] + ([self.ssl_port] if self.ssl else [])
        while True:
            if self._process is None or self._process.poll() is not None:
                raise SandboxError(f"dovecot exited during start-up:\n{self._log_tail()}")
            if all(self._accepts(port) for port in ports):
                return
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"dovecot did not accept on {ports} within {START_TIMEOUT}s:\n"
                    f"{self._log_tail()}"
                )
            time.sleep(0.02)

    def _accepts(self, port: int) -> bool:
        """The port greets (``* OK``): Dovecot's login and auth processes are ready."""
        try:
            with socket.create_connection((HOST, port), timeout=2) as sock:
                if port != self._ssl_port:
                    return sock.recv(256).startswith(b"* OK")
                context = ssl.create_default_context(cafile=self.ca_file)
                with context.wrap_socket(sock, server_hostname=HOST) as tls:
                    return tls.recv(256).startswith(b"* OK")
        except OSError:
            return False

    def _log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- files --------------------------------------------------------------------------------

    def _prepare_files(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "state").mkdir(exist_ok=True)
        self._data_dir = self.root
        if not _traversable(self.root) or len(str(self.root / "run")) > MAX_BASE_DIR:
            self._data_dir = Path(tempfile.mkdtemp(prefix="mailferry-dovecot-"))
            self._data_dir.chmod(0o711)
            self._own_data_dir = True
            link = self.root / "data"
            link.unlink(missing_ok=True)
            link.symlink_to(self._data_dir)
        uid, gid = pwd.getpwnam(MAIL_USER).pw_uid, grp.getgrnam(MAIL_GROUP).gr_gid
        (self.data_dir / "home").mkdir(exist_ok=True)
        os.chown(self.data_dir / "home", uid, gid)
        (self.data_dir / "run").mkdir(mode=0o755, exist_ok=True)
        self.users_dir.mkdir(exist_ok=True)
        self.users_dir.chmod(0o755)
        self.masters_path.write_text(f"{self.master_user}:{self.master_password}\n")
        self.masters_path.chmod(0o644)
        self.port = free_port()
        if self.ssl:
            self._ssl_port = free_port()
            cert, _ = _self_signed_cert(self.root)
            self._ca_file = cert

    def _config(self) -> str:
        layout = "maildir:~/Maildir" + (":LAYOUT=fs" if self.delimiter == "/" else "")
        lines = [
            f"base_dir = {self.data_dir / 'run'}",
            f"state_dir = {self.root / 'state'}",
            f"instance_name = mailferry-{self.port}",
            f"log_path = {self.log_path}",
            "protocols = imap",
            f"listen = {HOST}",
            "default_login_user = dovenull",
            "default_internal_user = dovecot",
            "auth_mechanisms = plain login"
            + (" xoauth2 oauthbearer" if self.oauth2_introspection_url else ""),
            "disable_plaintext_auth = no",
            "auth_master_user_separator = *",
            "auth_failure_delay = 0",
            f"mail_location = {layout}",
            # The default 256 MB per process is too little for a folder of a million messages
            # (imap dies "Out of memory" reading its index: benchmarks/scale.py).
            "default_vsz_limit = 2G",
            *self._ssl_config(),
            *self._auth_config(),
            *self._namespace_config(),
            *self._service_config(),
            *self._plugin_config(),
        ]
        if self.capability is not None:
            lines.append(f"imap_capability = {self.capability}")
        return "\n".join(lines) + "\n"

    def _ssl_config(self) -> list[str]:
        if not self.ssl:
            return ["ssl = no"]
        lines = ["ssl = yes", f"ssl_cert = <{self.root / 'cert.pem'}"]
        lines.append(f"ssl_key = <{self.root / 'key.pem'}")
        dh = Path("/usr/share/dovecot/dh.pem")
        if dh.exists():
            lines.append(f"ssl_dh = <{dh}")
        return lines

    def _auth_config(self) -> list[str]:
        home = self.data_dir / "home" / "%u"
        return [
            *self._oauth2_config(),
            "passdb {",
            "  driver = passwd-file",
            f"  args = scheme=PLAIN username_format=%u {self.masters_path}",
            "  master = yes",
            "  pass = yes",
            "}",
            "passdb {",
            "  driver = passwd-file",
            f"  args = scheme=PLAIN username_format=%u {self.users_dir}/%u",
            "}",
            "userdb {",
            "  driver = passwd-file",
            f"  args = username_format=%u {self.users_dir}/%u",
            f"  default_fields = uid={MAIL_USER} gid={MAIL_GROUP} home={home}",
            "}",
        ]

    def _oauth2_config(self) -> list[str]:
        """An ``oauth2`` passdb for the token mechanisms only (passwords still go to passwd-file)."""
        if self.oauth2_introspection_url is None:
            return []
        url = self.oauth2_introspection_url
        ext = self.root / "dovecot-oauth2.conf.ext"
        ext.write_text(
            "\n".join(
                [
                    # POST token=...; the URL takes no %variables (2.3.19's auth process panics).
                    "introspection_mode = post",
                    f"introspection_url = {url}",
                    "force_introspection = yes",
                    "username_attribute = username",
                    *(
                        [f"username_format = {self.oauth2_username_format}"]
                        if self.oauth2_username_format
                        else []
                    ),
                    "active_attribute = active",
                    "active_value = true",
                ]
            )
            + "\n"
        )
        ext.chmod(0o644)
        return [
            "passdb {",
            "  driver = oauth2",
            "  mechanisms = xoauth2 oauthbearer",
            f"  args = {ext}",
            "}",
        ]

    def _namespace_config(self) -> list[str]:
        auto = "subscribe" if self.auto_create else "no"
        lines = ["namespace inbox {", "  inbox = yes", f"  separator = {self.delimiter}"]
        if self.prefix:
            lines.append(f"  prefix = {self.prefix}")
        for name, flag in self.special_use.items():
            if '"' in name or "\\" in name:
                raise SandboxError(f"special-use mailbox name {name!r} cannot be configured")
            lines += [f'  mailbox "{name}" {{', f"    special_use = {flag}", f"    auto = {auto}"]
            lines.append("  }")
        lines.append("}")
        return lines

    def _service_config(self) -> list[str]:
        ssl_port = self._ssl_port if self.ssl else 0
        return [
            # No auth penalty: one failed login in a test would delay every later login from
            # 127.0.0.1 by seconds (auth_failure_delay = 0 does not cover it).
            "service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}",
            "service imap-login {",
            f"  inet_listener imap {{\n    address = {HOST}\n    port = {self.port}\n  }}",
            f"  inet_listener imaps {{\n    address = {HOST}\n    port = {ssl_port}",
            "    ssl = yes\n  }",
            "}",
        ]

    def _plugin_config(self) -> list[str]:
        if self.quota_bytes is None:
            return []
        return [
            "mail_plugins = $mail_plugins quota",
            "protocol imap {\n  mail_plugins = $mail_plugins imap_quota\n}",
            "plugin {",
            "  quota = maildir:User quota",
            f"  quota_rule = *:storage={self.quota_bytes}B",
            "}",
        ]

    # -- users and admin ----------------------------------------------------------------------

    def add_user(self, name: str, password: str) -> None:
        """Add a mail user, usable at once (no restart: each user has their own passwd-file)."""
        _check_field("user name", name, ':\n\r"/%*')
        _check_field("password", password)
        path = self.users_dir / name
        if name == self.master_user or path.exists():
            raise SandboxError(f"user {name!r} exists already")
        self._write_user(path, password, "")

    def set_quota(self, user: str, nbytes: int) -> None:
        """Give ``user`` a storage quota of ``nbytes``; needs ``quota_bytes`` at start.

        Stored as ``userdb_quota_rule`` in the user's passwd-file and used from the next login on.
        Dovecot checks a passwd-file for changes at most once a second, so this returns only
        after the next whole second has begun.
        """
        if self.quota_bytes is None:
            raise SandboxError("start the server with quota_bytes=... to enable the quota plugin")
        path = self.users_dir / user
        if not path.exists():
            raise SandboxError(f"no user {user!r}")
        password = path.read_text().split(":")[1]
        self._write_user(path, password, f"userdb_quota_rule=*:storage={nbytes}B")
        time.sleep(1.05 - time.time() % 1)

    @staticmethod
    def _write_user(path: Path, password: str, extra: str) -> None:
        before = path.stat() if path.exists() else None
        path.write_text(f"{path.name}:{password}::::::{extra}\n")
        path.chmod(0o644)
        after = path.stat()
        # Dovecot reloads when size or mtime (whole seconds) differ; make sure one of them does.
        if (
            before
            and after.st_size == before.st_size
            and int(after.st_mtime) == int(before.st_mtime)
        ):
            os.utime(path, (after.st_atime, before.st_mtime + 1))

    def doveadm(self, *args: str) -> str:
        """Run ``doveadm -c CONF ARGS...`` against this instance and return its stdout."""
        result = subprocess.run(
            [_program("doveadm"), "-c", str(self.conf_path), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SandboxError(
                f"doveadm {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result.stdout
