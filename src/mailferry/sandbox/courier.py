"""A throwaway Courier-IMAP 5.0 (Debian's packages, unpacked by scripts/install-servers) on 127.0.0.1.

``CourierServer(root)`` has the shape of ``DovecotServer``. Courier's authlib has its paths compiled
in (``/etc/courier/authdaemonrc``, ``/etc/courier/userdb.dat``, the authdaemon socket under
``/run/courier``, its modules in ``/usr/lib/courier-authlib``), so the server runs in its own mount
namespace (``unshare --mount``) where this instance's directories are bind-mounted on those paths:
``authdaemond`` with the ``authuserdb`` module, and ``couriertcpd`` -> ``imaplogin`` -> ``imapd``
with the environment Debian's ``/etc/courier/imapd`` gives them. Nothing outside the namespace sees
the mounts; the empty mount points are made once (here or by scripts/install-servers).

Users live in a userdb (``userdb.dat`` + ``userdbshadow.dat``, built with authlib's own
``makedatprog``, passwords as SHA-512 crypt): ``add_user`` rebuilds it and makes the Maildir.
Courier's personal namespace is ``("INBOX." ".")``: folders are ``INBOX.Name``.
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import subprocess
from pathlib import Path

from mailferry.sandbox import process
from mailferry.sandbox.dovecot import HOST, MAIL_GROUP, MAIL_USER, SandboxError

MOUNT_POINTS = ("/etc/courier", "/run/courier", "/usr/lib/courier-authlib")


class CourierServer(process.TreeServer):
    """A Courier-IMAP instance for one test session; use it as a context manager."""

    name = "courier"
    delimiter = "."
    prefix = "INBOX."

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._users: dict[str, str] = {}  # name -> crypt(3) hash

    def _argv(self) -> list[str]:
        script = self.data_dir / "run.sh"
        script.write_text(self._script())
        return ["unshare", "--mount", "--propagation", "private", "sh", str(script)]

    def _prepare_files(self) -> None:
        for point in MOUNT_POINTS:
            Path(point).mkdir(parents=True, exist_ok=True)
        for sub in ("etc", "run/authdaemon", "home"):
            (self.data_dir / sub).mkdir(parents=True)
            (self.data_dir / sub).chmod(0o755)
        (self.data_dir / "etc/authdaemonrc").write_text(
            'authmodulelist="authuserdb"\ndaemons=2\nauthdaemonvar=/run/courier/authdaemon\n'
            'DEBUG_LOGIN=0\nDEFAULTOPTIONS=""\nLOGGEROPTS=""\n'
        )
        self._write_userdb()

    def _script(self) -> str:
        tree = process.TREE
        binds = {
            self.data_dir / "etc": "/etc/courier",
            self.data_dir / "run": "/run/courier",
            process.tree_path("usr/lib/courier-authlib"): "/usr/lib/courier-authlib",
            # libgamin starts /usr/libexec/gam_server (a path compiled in) for imapd's folder
            # watches; without one it retries for 1.2 s at every login.
            process.tree_path("usr/libexec"): "/usr/libexec",
        }
        q = shlex.quote
        lines = ["set -e", *(f"mount --bind {q(str(a))} {b}" for a, b in binds.items())]
        lines += [
            f"{q(str(tree / 'usr/lib/courier/courier-authlib/authdaemond'))} &",
            # Debian's settings for imapd, as its init script reads them.
            "set -a",
            f". {q(str(process.tree_path('etc/courier/imapd')))}",
            "set +a",
            f"export IMAP_SHAREDINDEXFILE={q(str(self.data_dir / 'etc/shared/index'))}",
            (
                f"exec {q(str(tree / 'usr/sbin/couriertcpd'))} -address={HOST}"
                " -nodnslookup -noidentlookup"
                f" {self.port} {q(str(tree / 'usr/lib/courier/courier/imaplogin'))}"
                f" {q(str(tree / 'usr/bin/imapd'))} Maildir"
            ),
        ]
        return "\n".join(lines) + "\n"

    # -- users --------------------------------------------------------------------------------

    def add_user(self, name: str, password: str) -> None:
        """A user in the userdb with an empty Maildir, usable at once."""
        if not name or not name.isascii() or not name.replace("-", "").replace("_", "").isalnum():
            raise SandboxError(f"user name {name!r} cannot go into a userdb here")
        if not password or any(c in password for c in "\r\n"):
            raise SandboxError("a password must be one non-empty line")
        if name in self._users:
            raise SandboxError(f"user {name!r} exists already")
        hashed = (
            subprocess.run(
                ["openssl", "passwd", "-6", "-stdin"],
                input=password.encode(),
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .strip()
        )
        maildir = self.data_dir / "home" / name / "Maildir"
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True)
        uid, gid = pwd.getpwnam(MAIL_USER).pw_uid, grp.getgrnam(MAIL_GROUP).gr_gid
        for path in (maildir.parent, maildir, *maildir.iterdir()):
            os.chown(path, uid, gid)
            path.chmod(0o700)
        self._users[name] = hashed
        self._write_userdb()

    def _write_userdb(self) -> None:
        uid, gid = pwd.getpwnam(MAIL_USER).pw_uid, grp.getgrnam(MAIL_GROUP).gr_gid
        home = self.data_dir / "home"
        plain = [
            f"{n}\tuid={uid}|gid={gid}|home={home / n}|mail={home / n}/Maildir" for n in self._users
        ]
        shadow = [f"{n}\tsystempw={h}" for n, h in self._users.items()]
        self._make_dat("userdb", plain, 0o644)
        self._make_dat("userdbshadow", shadow, 0o600)

    def _make_dat(self, stem: str, lines: list[str], mode: int) -> None:
        etc = self.data_dir / "etc"
        tool = process.tree_path("usr/lib/courier/courier-authlib/makedatprog")
        text = "".join(f"{line}\n" for line in lines) + ".\n"
        tmp, dat = etc / f"{stem}.tmp", etc / f"{stem}.dat"
        process.run_tool([str(tool), "-", str(tmp), str(dat)], stdin=text.encode())
        dat.chmod(mode)
