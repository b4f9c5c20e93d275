"""Every table of the one state database, in one ``MetaData`` (``schema`` says which component
owns which, and at which version).

Portable types only (Text, Integer, BigInteger, Float, Boolean): the same tables work on
PostgreSQL. Times are UNIX seconds (float), which compare the same on every backend. Secrets
arrive here already encrypted (Fernet tokens) or hashed; nothing here is ever a plain secret.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

METADATA = MetaData()

# -- the file's identity, and every component's schema version (application -> version) ----------
META = Table(
    "meta",
    METADATA,
    Column("application", String(40), primary_key=True),
    Column("schema_version", Integer, nullable=False),
)


def _key_columns() -> list[Column[Any]]:
    # IMAP UIDs are unsigned 32-bit: BigInteger, or PostgreSQL's signed INTEGER overflows.
    return [
        Column("pair", Text, primary_key=True),
        Column("folder", Text, primary_key=True),
        Column("source_uid", BigInteger, primary_key=True, autoincrement=False),
    ]


CHECKPOINTS = Table(
    "checkpoints",
    METADATA,
    Column("pair", Text, primary_key=True),
    Column("folder", Text, primary_key=True),  # Checkpoint.source_folder
    Column("target_folder", Text, nullable=False),
    Column("source_uidvalidity", BigInteger, nullable=False),
    Column("source_uidnext", BigInteger, nullable=False),
    Column("source_modseq", BigInteger, nullable=True),  # RFC 7162: up to 2**63 - 1
    Column("target_uidvalidity", BigInteger, nullable=False),
    Column("selection", Text, nullable=False),
    # The folder's rows in ``copied``, counted when a complete pass was saved; NULL once a write
    # may have changed them (schema 3: a no-op pass of a million-message folder counts nothing).
    Column("copied", BigInteger, nullable=True),
)
COPIED = Table(
    "copied",
    METADATA,
    *_key_columns(),
    Column("target_uid", BigInteger, nullable=True),
    Column("flags", Text, nullable=False),
    Column("label", Text, nullable=True),
    Column("elsewhere", Integer, nullable=False, server_default="0"),
    Index("copied_label", "pair", "label"),
)
INTENTS = Table(
    "intents",
    METADATA,
    *_key_columns(),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("flags", Text, nullable=False),
    Column("target_folder", Text, nullable=False),
    Column("target_uidvalidity", BigInteger, nullable=False),
    Column("target_uidnext", BigInteger, nullable=False),
    Column("message_id", Text, nullable=True),
    Column("internaldate", BigInteger, nullable=True),
    Column("label", Text, nullable=True),
)
FAILURES = Table("failures", METADATA, *_key_columns(), Column("reason", Text, nullable=False))


# -- calendars and contacts (application ``mailferry.items``) --------------------------------------
# Hrefs are Text: a server names its resources as it likes, and they are compared exactly. An item's
# identity (``ItemKey``) is two columns: ``key_kind`` "uid" or "content" (SHA-256 hex), and ``key``.
# Every lookup is by (pair, source collection) or (pair, side, collection): the primary keys' prefix.
def _item_key_columns() -> list[Column[Any]]:
    return [
        Column("pair", Text, primary_key=True),
        Column("source", Text, primary_key=True),  # the source collection's href
        Column("source_href", Text, primary_key=True),
    ]


def _identity_columns() -> list[Column[Any]]:
    return [Column("key_kind", String(8), nullable=False), Column("key", Text, nullable=False)]


DAV_COLLECTIONS = Table(
    "dav_collections",
    METADATA,
    Column("pair", Text, primary_key=True),
    Column("source", Text, primary_key=True),
    Column("target", Text, nullable=False),
    Column("source_token", Text, nullable=True),  # RFC 6578 sync tokens of the last whole pass
    Column("target_token", Text, nullable=True),
)
DAV_ITEMS = Table(
    "dav_items",
    METADATA,
    *_item_key_columns(),
    Column("source_etag", Text, nullable=True),
    *_identity_columns(),
    Column("target_href", Text, nullable=False),
    Column("target_etag", Text, nullable=True),
)
DAV_INTENTS = Table(
    "dav_intents",
    METADATA,
    *_item_key_columns(),
    Column("source_etag", Text, nullable=True),
    *_identity_columns(),
    Column("target_href", Text, nullable=False),
    Column("if_match", Text, nullable=True),  # an update: the target ETag it replaces
)
DAV_IDENTITIES = Table(
    "dav_identities",
    METADATA,
    Column("pair", Text, primary_key=True),
    Column("side", String(8), primary_key=True),  # "source" or "target"
    Column("collection", Text, primary_key=True),
    Column("href", Text, primary_key=True),
    Column("etag", Text, nullable=True),
    *_identity_columns(),
)
DAV_FAILURES = Table(
    "dav_failures", METADATA, *_item_key_columns(), Column("reason", Text, nullable=False)
)


# -- Microsoft 365 mailboxes through Graph (application ``mailferry.mailbox``) ---------------------
# Ids and change keys are Graph's opaque strings (Text, compared exactly). Every lookup is by
# (pair, source folder id): the primary keys' prefix.
def _mailbox_key_columns() -> list[Column[Any]]:
    return [
        Column("pair", Text, primary_key=True),
        Column("source", Text, primary_key=True),  # the source folder's id
        Column("source_id", Text, primary_key=True),  # the source item's id
    ]


MBX_FOLDERS = Table(
    "mbx_folders",
    METADATA,
    Column("pair", Text, primary_key=True),
    Column("source", Text, primary_key=True),
    Column("target", Text, nullable=False),
    Column("token", Text, nullable=True),  # the delta token of the last complete pass
)
MBX_ITEMS = Table(
    "mbx_items",
    METADATA,
    *_mailbox_key_columns(),
    Column("source_change_key", Text, nullable=False),
    Column("target_id", Text, nullable=False),
    Column("target_change_key", Text, nullable=False),
    Column("key", Text, nullable=True),  # PidTagInternetMessageId, PidLidCleanGlobalObjectId, ...
    Index("mbx_items_target", "pair", "source", "target_id"),  # "is it a row's copy?"
)
MBX_INTENTS = Table(
    "mbx_intents",
    METADATA,
    *_mailbox_key_columns(),
    Column("source_change_key", Text, nullable=False),
    Column("target_folder", Text, nullable=False),
    Column("key", Text, nullable=True),
    Column("mode", String(8), nullable=False),  # create, update
    Column("target_id", Text, nullable=True),  # an update: the item it replaces
    Column("target_change_key", Text, nullable=True),  # ... and the change key it replaces
    # Schema 3: the size of the version imported (NULL: unknown, or an intent of schema 2).
    Column("size", BigInteger, nullable=True),
)
MBX_FAILURES = Table(
    "mbx_failures", METADATA, *_mailbox_key_columns(), Column("reason", Text, nullable=False)
)
# Schema 4: copies that may be second ones (domain Doubt), kept from the transaction that learns of
# one (an intent settled that cannot be found, or an import that may double an item) until a run
# that finishes has reported it: the run that learnt it may not finish. Its folder's path and
# workload as they were, so that a run reports it whichever folders it passes.
MBX_DOUBTS = Table(
    "mbx_doubts",
    METADATA,
    *_mailbox_key_columns(),
    Column("folder", Text, nullable=False),
    Column("workload", String(16), nullable=False),
    Column("reason", Text, nullable=False),
)
# A folder pass's scratch lists (domain Listing: the target folder's entries, the source ids a
# whole pass listed, the source ids this run imported): in the state so that a pass never holds a
# folder in memory; rewritten by each pass, never part of what a crash must keep.
MBX_LISTED = Table(
    "mbx_listed",
    METADATA,
    Column("pair", Text, primary_key=True),
    Column("source", Text, primary_key=True),  # the source folder's id
    Column("side", String(8), primary_key=True),  # target, source, written
    Column("item_id", Text, primary_key=True),
    Column("change_key", Text, nullable=True),
    Column("item_class", Text, nullable=True),
    Column("size", Integer, nullable=True),
    Column("key", Text, nullable=True),
    Column("claimed", Integer, nullable=False, default=0),
    Index("mbx_listed_key", "pair", "source", "side", "key"),
)

# -- the batch service (application ``mailferry.batches``) ----------------------------------------
ENDPOINTS = Table(
    "batch_endpoints",
    METADATA,
    Column("name", String(64), primary_key=True),
    Column("host", Text, nullable=False),
    Column("port", Integer, nullable=False),
    Column("security", String(16), nullable=False),
    Column("auth_user", Text, nullable=True),
    Column("auth_secret", Text, nullable=True),  # Fernet token
    Column("max_connections", Integer, nullable=False),
    Column("ca_file", Text, nullable=True),
    Column("insecure", Boolean, nullable=False, default=False),
    Column("created", Float, nullable=False),
    # Added after the first schema (see schema.add_missing_columns); NULL in an older row reads as the
    # default. ``oauth`` is JSON: the token source's settings, its secrets as Fernet tokens.
    Column("auth", String(16), nullable=True),  # an AuthMethod value; NULL: auto
    Column("oauth", Text, nullable=True),
    Column("profile", String(16), nullable=True),  # a profile name; NULL: auto
    # Calendars and contacts: a DAV URL template ("https://dav.host/{user}/") or "auto"; NULL: none.
    Column("dav", Text, nullable=True),
    Column("dav_ca_file", Text, nullable=True),  # NULL: the endpoint's own TLS settings
    Column("dav_insecure", Boolean, nullable=True),  # NULL: the endpoint's own
    # Mail in files: "maildir:///var/vmail/{user}" and the like (host empty, port 0); NULL: IMAP.
    Column("files", Text, nullable=True),
)
BATCHES = Table(
    "batch_batches",
    METADATA,
    Column("name", String(64), primary_key=True),
    Column("source", String(64), ForeignKey("batch_endpoints.name"), nullable=False),
    Column("target", String(64), ForeignKey("batch_endpoints.name"), nullable=False),
    Column("options", Text, nullable=False),  # JSON: since, before, include_deleted
    Column("every", Float, nullable=True),  # seconds between scheduled incremental passes
    Column("stop_requested", Boolean, nullable=False, default=False),
    Column("created", Float, nullable=False),
)


def _batch_fk() -> ForeignKey:
    return ForeignKey("batch_batches.name", ondelete="CASCADE")


MAILBOXES = Table(
    "batch_mailboxes",
    METADATA,
    Column("batch", String(64), _batch_fk(), primary_key=True),
    Column("email", Text, primary_key=True),
    Column("line", Integer, nullable=False),
    Column("source_user", Text, nullable=False),
    Column("source_secret", Text, nullable=True),
    Column("target_user", Text, nullable=False),
    Column("target_secret", Text, nullable=True),
    Column("include", Text, nullable=False, default="[]"),  # JSON list of regexes
    Column("exclude", Text, nullable=False, default="[]"),
    Column("state", String(16), nullable=False),
    Column("pending", String(16), nullable=True),  # the pass wanted: "sync" or "complete"
    Column("reason", Text, nullable=True),
    Column("owner", Text, nullable=True),  # the process running it (see scheduler.Owner)
    Column("heartbeat", Float, nullable=True),
    Column("folders", Integer, nullable=False, default=0),
    Column("copied", BigInteger, nullable=False, default=0),  # all runs
    Column("bytes", BigInteger, nullable=False, default=0),  # all runs
    Column("existing", BigInteger, nullable=False, default=0),  # last run
    Column("skipped", BigInteger, nullable=False, default=0),  # last run: deleted + filtered
    Column("errors", Integer, nullable=False, default=0),  # last run
    Column("planned", BigInteger, nullable=False, default=0),  # current run, so far
    Column("planned_bytes", BigInteger, nullable=False, default=0),
    Column("done", BigInteger, nullable=False, default=0),
    Column("done_bytes", BigInteger, nullable=False, default=0),
    Column("seconds", Float, nullable=False, default=0.0),  # all runs
    Column("started", Float, nullable=True),  # current or last run
    Column("finished", Float, nullable=True),
    Column("last_synced", Float, nullable=True),
    # Calendars and contacts (added later: NULL in an older row). ``collections`` NULL: no DAV pass
    # ran yet; items_copied counts all runs, the others the last run.
    Column("collections", Integer, nullable=True),
    Column("items_copied", BigInteger, nullable=True),
    Column("items_updated", BigInteger, nullable=True),
    Column("items_skipped", BigInteger, nullable=True),
    Column("items_failed", Integer, nullable=True),
    Column("item_conflicts", Integer, nullable=True),
    # Per workload (mail, calendar, contacts, tasks, notes), JSON: the last pass's section of each
    # (route, seen, copied, updated, already_there, unchanged, failed; ``copied_total``: all
    # passes); NULL: no pass recorded one yet (added later, like the item counters).
    Column("workloads", Text, nullable=True),
)
RUNS = Table(
    "batch_runs",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch", String(64), _batch_fk(), nullable=False),
    Column("email", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("started", Float, nullable=False),
    Column("finished", Float, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("summary", Text, nullable=False),  # Summary.as_json()
)
BATCH_FAILURES = Table(
    "batch_failures",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch", String(64), _batch_fk(), nullable=False),
    Column("email", Text, nullable=False),
    Column("folder", Text, nullable=False),
    Column("uid", BigInteger, nullable=True),
    Column("reason", Text, nullable=False),
    # Added later: "item" for a calendar or contact item (``folder`` is then its collection, ``href``
    # and ``item_uid`` name it); NULL: a message.
    Column("kind", String(8), nullable=True),
    Column("href", Text, nullable=True),
    Column("item_uid", Text, nullable=True),
)
SERVICES = Table(
    "batch_services",
    METADATA,
    Column("owner", Text, primary_key=True),
    Column("heartbeat", Float, nullable=False),
)

# Workers (``mailferry worker``) on a shared database: one row each, written by the worker itself
# (adapters/store/workers.py); ``owner`` is the ``host:pid:started`` its mailboxes' rows name.
WORKERS = Table(
    "batch_workers",
    METADATA,
    Column("owner", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", String(40), nullable=False),
    Column("started", Float, nullable=False),
    Column("heartbeat", Float, nullable=False),
    Column("running", Integer, nullable=False),  # jobs running now
    Column("concurrency", Integer, nullable=False),
    Column("stall", Float, nullable=False),  # its --stall-timeout: silent longer, it is lost
)
# The release of mailferry that last ran `mailferry db upgrade` (one row): workers of another
# release are refused, since their code may not match the schema or the queue's task arguments.
RELEASE = Table(
    "batch_release",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", String(40), nullable=False),
    Column("upgraded", Float, nullable=False),
)

# -- the web app's logins (application ``mailferry.web``) -----------------------------------------
ADMIN = Table(
    "web_admin",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("password_hash", Text, nullable=False),
    Column("changed", Float, nullable=False),
)
TOKENS = Table(
    "web_tokens",
    METADATA,
    Column("name", String(64), primary_key=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("created", Float, nullable=False),
    Column("last_used", Float, nullable=True),
    Column("expires", Float, nullable=True),  # None: until revoked
)
SESSIONS = Table(
    "web_sessions",
    METADATA,
    Column("digest", String(64), primary_key=True),
    Column("csrf", String(64), nullable=False),
    Column("created", Float, nullable=False),
    Column("expires", Float, nullable=False),
    Column("last_seen", Float, nullable=True),  # None in files from before the idle timeout
)
