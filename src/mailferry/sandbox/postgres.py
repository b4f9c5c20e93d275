"""A throwaway PostgreSQL cluster (Debian's ``postgresql`` package) for the state database tests.

``initdb`` writes a new cluster into a private temporary directory as the ``postgres`` user
(PostgreSQL refuses to run as root; the tests do), without fsync: a test cluster is thrown away,
so nothing has to reach the disk. The server listens on 127.0.0.1 at a free port (password
logins, scram-sha-256) and on a Unix socket in the data directory (``trust``: the fixture's own
administration, as the superuser ``postgres``). mailferry logs in as ``USER``, a role with a
password that may create databases but is no superuser, as it would be in production.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from mailferry.sandbox.dovecot import HOST, SandboxError
from mailferry.sandbox.process import TreeServer

OS_USER = "postgres"  # the account initdb and the server run as (Debian's package creates it)
USER = "mailferry"
DATABASE = "mailferry"


def pg_bin() -> Path:
    """The directory of Debian's PostgreSQL programs (the newest installed version)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_major)
    if not found:
        raise SandboxError("PostgreSQL not found; run scripts/install (Debian's postgresql)")
    return found[-1].parent


def _major(initdb: Path) -> int:
    version = initdb.parent.parent.name
    return int(version) if version.isdigit() else 0


class PostgresServer(TreeServer):
    """A PostgreSQL cluster for one test session: ``url()`` for mailferry, ``create_database()``
    for a test that needs an empty one, ``admin()`` for looking at the server's own views."""

    name = "postgres"
    needs_root = True  # initdb and the server run as the postgres user

    def __init__(self, root: Path, settings: dict[str, str] | None = None) -> None:
        """``settings``: more server settings, e.g. ``shared_preload_libraries`` (benchmarks)."""
        super().__init__(root)
        self.password = secrets.token_urlsafe(12)
        self.settings = dict(settings or {})

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "cluster"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir

    def url(self, database: str = DATABASE, *, password: str | None = None) -> str:
        """The URL mailferry is given: ``postgresql+psycopg://USER:PASSWORD@127.0.0.1:PORT/DB``."""
        secret = self.password if password is None else password
        return f"postgresql+psycopg://{USER}:{secret}@{HOST}:{self.port}/{database}"

    def admin(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection over the Unix socket (autocommit), for set-up and inspection."""
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=OS_USER,
            dbname=database,
            autocommit=True,
            connect_timeout=2,
        )

    def create_database(self, name: str) -> str:
        """A new, empty database owned by ``USER``; its URL."""
        with self.admin() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} STRATEGY FILE_COPY").format(
                    sql.Identifier(name), sql.Identifier(USER)
                )
            )
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def start(self) -> None:
        super().start()
        try:
            self._create_role()
        except BaseException:
            self.stop()
            raise

    def _prepare_files(self) -> None:
        account = pwd.getpwnam(OS_USER)
        os.chown(self.data_dir, account.pw_uid, account.pw_gid)
        initdb = [
            str(pg_bin() / "initdb"),
            *("-D", str(self.pgdata)),
            *("-U", OS_USER, "-E", "UTF8", "--locale=C"),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
            "--no-instructions",
        ]
        result = subprocess.run(
            initdb, capture_output=True, user=OS_USER, env=self._env(), check=False
        )
        if result.returncode != 0:
            said = result.stderr.decode(errors="replace").strip()
            raise SandboxError(f"initdb failed ({result.returncode}): {said}")

    def _argv(self) -> list[str]:
        settings = {
            "listen_addresses": HOST,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "off",  # a throwaway cluster: nothing has to survive a power loss
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "32MB",
            "dynamic_shared_memory_type": "mmap",
            "logging_collector": "off",
            **self.settings,
        }
        options = [f"--{key.replace('_', '-')}={value}" for key, value in settings.items()]
        setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        # setpriv execs the server in place (no parent left behind), as the postgres user.
        become = [setpriv, f"--reuid={OS_USER}", f"--regid={OS_USER}", "--init-groups", "--"]
        return [*become, str(pg_bin() / "postgres"), "-D", str(self.pgdata), *options]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "LC_ALL": "C", "HOME": str(self.data_dir)}

    def _ready(self) -> bool:
        try:
            with self.admin():
                return True
        except psycopg.OperationalError:
            return False

    def _create_role(self) -> None:
        with self.admin() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                    sql.Identifier(USER), sql.Literal(self.password)
                )
            )
        self.create_database(DATABASE)
