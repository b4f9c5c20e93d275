"""The commands on a shared PostgreSQL state database (`--database`, $MAILFERRY_DATABASE): `db
upgrade`, a batch run by `mailferry serve` and verified, and one clear line for each bad set-up."""

from __future__ import annotations

import json
import os

import pytest

from mailferry import __version__
from mailferry.sandbox.corpus import build_corpus, connect, load_corpus
from mailferry.sandbox.postgres import PostgresServer
from tests.e2e.test_batch_cli import mailferry

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def load_mailboxes(dovecot_slash, dovecot_dot, make_user, tmp_path, count, *, seed, scale):
    """``count`` source mailboxes filled with the corpus, as many empty targets, and a batch CSV."""
    sources, targets = [], []
    for i in range(count):
        user, password = make_user(dovecot_slash)
        client = connect(dovecot_slash, user, password)
        try:
            load_corpus(client, build_corpus(seed + i, scale=scale), dovecot_slash.delimiter)
        finally:
            client.logout()
        sources.append((user, password))
        targets.append(make_user(dovecot_dot))
    lines = ["EmailAddress,UserName,Password,TargetUserName,TargetPassword"]
    lines += [
        f"{tu}@new.example,{su},{sp},{tu},{tp}"
        for (su, sp), (tu, tp) in zip(sources, targets, strict=True)
    ]
    csv_path = tmp_path / "wave.csv"
    csv_path.write_text("\r\n".join(lines) + "\r\n")
    return sources, targets, csv_path


def environment(tmp_path, database: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILFERRY_", "PG"))}
    env["MAILFERRY_STATE"] = str(tmp_path / "data" / "state.sqlite3")  # the key ring's directory
    if database:
        env["MAILFERRY_DATABASE"] = database
    return env


def as_typed(url: str) -> str:
    """The URL as a user writes it (no driver), the password left to $PGPASSWORD."""
    scheme, _, rest = url.partition("://")
    userinfo, _, host = rest.rpartition("@")
    assert scheme == "postgresql+psycopg"
    return f"postgresql://{userinfo.split(':')[0]}@{host}"


def test_db_upgrade_creates_then_finds_up_to_date(postgres_database, postgres_server, tmp_path):
    env = environment(tmp_path, as_typed(postgres_database))
    env["PGPASSWORD"] = postgres_server.password
    first = mailferry("db", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "mailferry: created at schema 3",
        "mailferry.batches: created at schema 2",
        "mailferry.web: created at schema 1",
        "mailferry.items: created at schema 1",
        "mailferry.mailbox: created at schema 4",
        "procrastinate: created",
    ]
    assert postgres_server.password not in first.stderr + first.stdout
    again = mailferry("db", "upgrade", env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        "mailferry: schema 3, up to date",
        "mailferry.batches: schema 2, up to date",
        "mailferry.web: schema 1, up to date",
        "mailferry.items: schema 1, up to date",
        "mailferry.mailbox: schema 4, up to date",
        "procrastinate: present",
    ]


def test_bad_set_ups_get_one_line_each(
    postgres_server: PostgresServer, postgres_database, tmp_path
):
    name = postgres_database.rsplit("/", 1)[1]
    cases = [  # (database URL, exit code, what the one line says)
        (postgres_database, 2, "the state tables are missing (this mailferry: schema 3); run `mailferry db upgrade`"),
        (postgres_server.url(name, password="wrong-pw"), 3, 'password authentication failed for user "mailferry"'),
        (postgres_database.replace(f":{postgres_server.port}/", ":1/"), 3, "cannot connect: Connection refused"),
        (postgres_server.url("nosuchdb"), 3, 'database "nosuchdb" does not exist'),
    ]  # fmt: skip
    for url, code, said in cases:
        result = mailferry("batch", "list", env=environment(tmp_path, url))
        assert result.returncode == code, (url, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert said in lines[0]
        assert lines[0].startswith("mailferry: state database: postgresql+psycopg://mailferry:***@")
        assert postgres_server.password not in result.stderr
        assert "wrong-pw" not in result.stderr
    unknown = mailferry(
        "batch", "list", "--database", "mysql://u@h/db", env=environment(tmp_path, None)
    )
    assert unknown.returncode == 2
    assert "mysql:// is not supported" in unknown.stderr


def test_an_older_schema_is_refused_until_upgraded(postgres_database, postgres_server, tmp_path):
    env = environment(tmp_path, postgres_database)
    assert mailferry("db", "upgrade", env=env).returncode == 0
    name = postgres_database.rsplit("/", 1)[1]
    with postgres_server.admin(name) as conn:
        conn.execute("ALTER TABLE batch_endpoints DROP COLUMN profile")
    refused = mailferry("endpoint", "list", env=env)
    assert refused.returncode == 2
    assert "the batch tables are at schema 2" in refused.stderr
    assert "run `mailferry db upgrade`" in refused.stderr
    upgraded = mailferry("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert mailferry("endpoint", "list", env=env).returncode == 0


def test_a_batch_on_postgresql_is_served_and_verified(
    dovecot_slash, dovecot_dot, make_user, postgres_database, tmp_path
):
    env = environment(tmp_path, postgres_database)
    assert mailferry("db", "upgrade", env=env).returncode == 0
    sources, targets, csv_path = load_mailboxes(
        dovecot_slash, dovecot_dot, make_user, tmp_path, 3, seed=200, scale=1
    )
    for args in (
        ["endpoint", "add", "old", "--host", "127.0.0.1", "--port", str(dovecot_slash.port),
         "--security", "none", "--max-connections", "2"],
        ["endpoint", "add", "new", "--host", "127.0.0.1", "--port", str(dovecot_dot.port),
         "--security", "none"],
        ["batch", "create", "wave", "--source", "old", "--target", "new", "--csv", str(csv_path)],
        ["batch", "start", "wave", "--detach"],
        ["serve", "--no-web", "--poll", "0.2", "--until-idle"],
    ):  # fmt: skip
        result = mailferry(*args, env=env, timeout=300)
        assert result.returncode == 0, (args, result.stderr)
    report = json.loads(mailferry("batch", "status", "wave", "--json", env=env).stdout)
    assert report["counts"] == {"synced": 3}
    assert all(m["messages_copied"] > 0 for m in report["mailboxes"])
    for (su, sp), (tu, tp) in zip(sources, targets, strict=True):
        verify = mailferry(
            "verify",
            f"imap://{su}@127.0.0.1:{dovecot_slash.port}",
            f"imap://{tu}@127.0.0.1:{dovecot_dot.port}",
            "--database",
            postgres_database,
            env={**env, "MAILFERRY_SOURCE_PASSWORD": sp, "MAILFERRY_TARGET_PASSWORD": tp},
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr


def test_workers_need_a_shared_database_and_its_job_queue(
    postgres_database, postgres_server, tmp_path
):
    alone = mailferry("worker", env=environment(tmp_path, None))
    assert alone.returncode == 2
    assert alone.stderr.strip() == (
        "mailferry: mailferry worker needs a shared state database: --database postgresql://... "
        "(or $MAILFERRY_DATABASE)"
    )
    no_worker = mailferry("serve", "--no-web", "--no-worker", env=environment(tmp_path, None))
    assert no_worker.returncode == 2
    assert "--no-worker needs a shared state database" in no_worker.stderr
    env = environment(tmp_path, postgres_database)
    assert mailferry("db", "upgrade", env=env).returncode == 0
    name = postgres_database.rsplit("/", 1)[1]
    with postgres_server.admin(name) as conn:
        conn.execute("DROP TABLE procrastinate_jobs CASCADE")
    for command in (["worker"], ["serve", "--no-web"]):
        missing = mailferry(*command, env=env)
        assert missing.returncode == 2
        [line] = missing.stderr.splitlines()
        assert line.endswith(
            "the job queue (procrastinate) tables are missing; run `mailferry db upgrade`"
        ), missing.stderr


def test_a_worker_of_another_release_is_refused(postgres_database, postgres_server, tmp_path):
    """`db upgrade` records its release; a worker (or serve's own) of another one exits 2 with
    one line naming both, before it takes a job."""
    env = environment(tmp_path, postgres_database)
    assert mailferry("db", "upgrade", env=env).returncode == 0
    name = postgres_database.rsplit("/", 1)[1]
    with postgres_server.admin(name) as conn:
        conn.execute("UPDATE batch_release SET version = '0.0.9'")
    for command in (["worker"], ["serve", "--no-web"]):
        refused = mailferry(*command, env=env)
        assert refused.returncode == 2, refused.stderr
        said = (
            f"mailferry: mailferry worker {__version__} cannot serve a database upgraded by "
            "mailferry 0.0.9: run the same version everywhere"
        )
        assert refused.stderr.splitlines() == [said]
    with postgres_server.admin(name) as conn:
        assert conn.execute("SELECT count(*) FROM batch_workers").fetchone() == (0,)
