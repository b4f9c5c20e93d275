"""A throwaway Cyrus IMAP 3.6 (Debian's packages, unpacked by scripts/install-servers) on 127.0.0.1.

``CyrusServer(root)`` has the shape of ``DovecotServer``: a context manager that writes its own
``imapd.conf`` and ``cyrus.conf``, runs ``master`` (which becomes the ``cyrus`` user) and stops it
on exit; ``add_user`` gives a user a password in a real sasldb (``saslpasswd2``, SASL PLAIN and
LOGIN over ``allowplaintext: yes``) and creates their ``user.NAME`` mailbox as the admin.

Configured as Debian ships it where it matters to a migration: ``altnamespace: no`` and
``unixhierarchysep: no``, so the personal namespace is ``("INBOX." ".")`` and every folder lives
below INBOX; ``munge8bit`` is left at its default (yes): raw 8-bit bytes in headers are stored as
``X``, as on a real site.
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import secrets
from pathlib import Path

from mailferry.sandbox import process
from mailferry.sandbox.dovecot import HOST, SandboxError

CYRUS_USER = "cyrus"  # made by scripts/install-servers, as cyrus-common's postinst would
CYRUS_GROUP = "mail"
REALM = "mailferry-test"  # the SASL realm: imapd.conf's servername and saslpasswd2 -u
BIN = "usr/lib/cyrus/bin"


class CyrusServer(process.TreeServer):
    """A Cyrus instance for one test session; use it as a context manager."""

    name = "cyrus"
    delimiter = "."
    prefix = "INBOX."

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.admin = "cyrus"
        self.admin_password = secrets.token_hex(8)

    @property
    def conf_path(self) -> Path:
        return self.data_dir / "imapd.conf"

    def _argv(self) -> list[str]:
        master = process.tree_path(f"{BIN}/master")
        argv = [
            str(master),
            "-D",
            "-C",
            str(self.conf_path),
            "-M",
            str(self.data_dir / "cyrus.conf"),
        ]
        argv += ["-p", str(self.data_dir / "master.pid")]
        return argv

    # -- files --------------------------------------------------------------------------------

    def _prepare_files(self) -> None:
        uid, gid = pwd.getpwnam(CYRUS_USER).pw_uid, grp.getgrnam(CYRUS_GROUP).gr_gid
        for sub in ("conf", "partition", "run/socket", "run/proc", "run/lock"):
            (self.data_dir / sub).mkdir(parents=True)
        for path in self.data_dir.rglob("*"):
            os.chown(path, uid, gid)
        self.conf_path.write_text(self._imapd_conf())
        (self.data_dir / "cyrus.conf").write_text(self._cyrus_conf())
        self._set_password(self.admin, self.admin_password)

    def _imapd_conf(self) -> str:
        data = self.data_dir
        settings = {
            "configdirectory": data / "conf",
            "partition-default": data / "partition",
            "defaultpartition": "default",
            "proc_path": data / "run/proc",
            "mboxname_lockpath": data / "run/lock",
            "lmtpsocket": data / "run/socket/lmtp",
            "idlesocket": data / "run/socket/idle",
            "notifysocket": data / "run/socket/notify",
            "servername": REALM,
            "admins": self.admin,
            "altnamespace": "no",  # Debian's imapd.conf: folders below INBOX.
            "unixhierarchysep": "no",
            "hashimapspool": "true",
            "allowplaintext": "yes",
            "sasl_pwcheck_method": "auxprop",
            "sasl_auxprop_plugin": "sasldb",
            "sasl_sasldb_path": data / "sasldb2",
            "sasl_mech_list": "PLAIN LOGIN",
            "umask": "077",
            "syslog_prefix": f"mailferry-cyrus-{self.port}",
        }
        return "".join(f"{key}: {value}\n" for key, value in settings.items())

    def _cyrus_conf(self) -> str:
        # master passes no -C to what it starts: each command names the config itself.
        conf = f"-C {self.conf_path}"
        recover = process.tree_path(f"{BIN}/ctl_cyrusdb")
        imapd = process.tree_path(f"{BIN}/imapd")
        return (
            f'START {{\n  recover cmd="{recover} {conf} -r"\n}}\n'
            f'SERVICES {{\n  imap cmd="{imapd} {conf}" listen="{HOST}:{self.port}" prefork=0\n}}\n'
            "EVENTS {\n}\n"
        )

    def _set_password(self, name: str, password: str) -> None:
        sasldb = self.data_dir / "sasldb2"
        tool = process.tree_path("usr/sbin/saslpasswd2")
        process.run_tool(
            [str(tool), "-f", str(sasldb), "-c", "-p", "-u", REALM, name], stdin=password.encode()
        )
        uid, gid = pwd.getpwnam(CYRUS_USER).pw_uid, grp.getgrnam(CYRUS_GROUP).gr_gid
        os.chown(sasldb, uid, gid)
        sasldb.chmod(0o640)

    # -- users --------------------------------------------------------------------------------

    def add_user(self, name: str, password: str) -> None:
        """A user with a password in the sasldb and an (empty) INBOX, usable at once."""
        if not name or not name.isascii() or not name.replace("-", "").replace("_", "").isalnum():
            raise SandboxError(f"user name {name!r} cannot be a Cyrus mailbox name here")
        if not password or any(c in password for c in "\r\n"):
            raise SandboxError("a password must be one non-empty line")
        self._set_password(name, password)
        self.admin_command("CREATE", f"user.{name}")

    def admin_command(self, command: str, *args: str) -> None:
        """One command as the admin (``CREATE user.x``, ``SETACL``...); a NO raises."""
        imap = imaplib.IMAP4(HOST, self.port)
        try:
            imap.login(self.admin, self.admin_password)
            typ, data = imap._simple_command(command, *args)
            if typ != "OK":
                raise SandboxError(f"{command} {' '.join(args)}: {data}")
        finally:
            imap.logout()
