"""The composition root: the only place that builds connectors, token providers, state stores and
services. ``open_pair`` turns a validated ``mailferry sync`` request into connected accounts, a
state store and a Migration; ``open_service``/``scheduler`` build the batch service and its
scheduler; ``open_auth_tables`` the web's login tables. Every store of one state file shares the
process's one Engine on it (``adapters.store.engine``).

Why one module of 400+ lines: it is the one composition root on purpose: every place where
settings become objects (pairs, token providers, the batch service, the scheduler) is here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mailferry import __version__
from mailferry.adapters.imap import Credentials, TlsOptions
from mailferry.adapters.imap.profiled import open_profiled
from mailferry.adapters.memory.state import MemoryStateStore
from mailferry.adapters.oauth import sources as oauth
from mailferry.adapters.oauth.app_only import M365_AUTHORITY_HOST
from mailferry.adapters.oauth.signin import SignInOptions
from mailferry.adapters.oauth.sources import TokenSource
from mailferry.adapters.store.engine import Database, open_database, sqlite_url
from mailferry.adapters.store.sync_state import SqlStateStore
from mailferry.config import FileStore, Location, default_state_path, pair_key, parse_location
from mailferry.domain.errors import ConfigError, MailferryError, ThrottledError
from mailferry.domain.folders import MappingOptions
from mailferry.domain.labels import LabelMode, LabelPolicy
from mailferry.domain.model import AuthMethod, Endpoint, Security, Summary
from mailferry.domain.plan import Selection
from mailferry.domain.ports import MailAccount, StateStore, TokenProvider
from mailferry.domain.profiles import (
    PROFILES,
    Profile,
    apply_profiles,
    choose_profile,
    label_policy,
)
from mailferry.service.folderwork import FolderWork
from mailferry.service.migrate import BATCH_COUNT as BATCH_COUNT  # the CLI's default
from mailferry.service.migrate import Migration, SyncOptions
from mailferry.service.planning import plan_folders
from mailferry.service.prefetch import both
from mailferry.service.progress import Progress
from mailferry.service.resilience import RetryPolicy
from mailferry.service.verify import VerifyReport, verify

if TYPE_CHECKING:  # the batch service's parts are imported where it is built (``_service``)
    from mailferry.adapters.store.auth import AuthTables
    from mailferry.adapters.store.records import EndpointRecord
    from mailferry.service.batches import BatchService
    from mailferry.service.davjobs import DavLink
    from mailferry.service.graphjobs import GraphAccess, MailboxLink
    from mailferry.service.scheduler import Job, Scheduler


@dataclass(frozen=True)
class Side:
    url: str
    name: str  # "source" or "target"
    authuser: str | None = None
    password_env: str = ""
    password_file: Path | None = None
    ca_file: Path | None = None
    insecure: bool = False
    auth: str = "auto"  # an AuthMethod value
    oauth_token_command: str | None = None
    m365_tenant: str | None = None
    m365_client_id: str | None = None
    m365_client_secret_file: Path | None = None
    m365_certificate_file: Path | None = None
    m365_authority: str = M365_AUTHORITY_HOST
    m365_graph_url: str | None = None  # Graph's base URL (given: this side is Microsoft 365)
    google_service_account_file: Path | None = None
    m365_delegated: bool = (
        False  # the URL's user signs in (device code; see adapters/oauth/delegated.py)
    )
    profile: str = "auto"  # a profile name, or "auto": by host

    @property
    def token_sources(self) -> list[str]:
        """The token sources given for this side, as the options that name them."""
        found = []
        if self.oauth_token_command:
            found.append(f"--{self.name}-oauth-token-command")
        if self.m365_delegated:
            found.append(f"--{self.name}-m365-delegated")
        elif self.m365_tenant or self.m365_client_id:
            found.append(f"--{self.name}-m365-tenant/--{self.name}-m365-client-id")
        if self.google_service_account_file:
            found.append(f"--{self.name}-google-service-account-file")
        return found


@dataclass(frozen=True)
class SyncRequest:
    source: Side
    target: Side
    allow_plaintext: bool = False
    mapping: MappingOptions = field(default_factory=MappingOptions)
    selection: Selection = field(default_factory=Selection)
    state_path: Path | None = None
    database: str | None = None  # a state database URL in place of the file (--database)
    dry_run: bool = False
    batch_size: int = BATCH_COUNT
    connections: int = 1
    share_big_folders: bool = False  # lanes join a big folder's first pass (folderlanes.py)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 120.0
    prompt: Callable[[str], str] | None = None
    neutralise_read_receipts: bool = False  # rename receipt requests in what the source gives
    labels: LabelMode = LabelMode.ONCE  # a source whose folders are labels (Gmail)
    # Interactive runs: shows a device-flow message, so a delegated sign-in can be made inline.
    show_sign_in: Callable[[str], None] | None = None


@dataclass(frozen=True)
class Login:
    """One side of a pair, resolved: where, as whom, with which server profile and TLS."""

    endpoint: Endpoint
    creds: Credentials = field(repr=False)
    profile: Profile | None
    tls: TlsOptions


class Connector:
    """Opens sessions to both sides of a pair, any number of times (Migration reconnects with it),
    and closes every one it opened. The source is opened read-only. A side in files (a FileStore)
    opens the file adapter instead of an IMAP session."""

    def __init__(
        self,
        source: Login | FileStore,
        target: Login | FileStore,
        *,
        timeout: float,
        neutralise_receipts: bool = False,
    ) -> None:
        self._sides = (source, target)
        self._timeout = timeout
        self._neutralise = neutralise_receipts
        self._opened: list[MailAccount] = []

    def source(self) -> MailAccount:
        return self._open(0, readonly=True)

    def target(self) -> MailAccount:
        return self._open(1, readonly=False)

    def _open(self, index: int, *, readonly: bool) -> MailAccount:
        side = self._sides[index]
        account: MailAccount
        if isinstance(side, FileStore):
            from mailferry.adapters.files import open_files  # noqa: PLC0415 - a file side only

            account = open_files(side.kind, side.path, writable=not readonly)
            self._opened.append(account)
            return account
        account = open_profiled(
            side.endpoint,
            side.creds,
            side.profile,
            tls=side.tls,
            timeout=self._timeout,
            readonly=readonly,
            neutralise_receipts=readonly and self._neutralise,
        )
        self._opened.append(account)
        return account

    def close_all(self) -> None:
        while self._opened:
            self._opened.pop().close()

    def close(self) -> None:
        """Like ``close_all``, but a session that fails to close is passed over (batch passes)."""
        while self._opened:
            with contextlib.suppress(MailferryError, OSError):
                self._opened.pop().close()


@dataclass
class Pair:
    request: SyncRequest
    source: MailAccount
    target: MailAccount
    store: StateStore
    key: str
    connector: Connector
    labels: LabelPolicy | None = None

    def migration(
        self, progress: Progress | None = None, stop: threading.Event | None = None
    ) -> Migration:
        options = SyncOptions(
            mapping=self.request.mapping,
            selection=self.request.selection,
            dry_run=self.request.dry_run,
            batch_count=self.request.batch_size,
            connections=self.request.connections,
            share_big_folders=self.request.share_big_folders,
            retry=self.request.retry,
            labels=self.labels,
        )
        return Migration(
            self.source,
            self.target,
            self.store,
            self.key,
            options,
            progress,
            reconnect=self.connector,
            stop=stop,
        )

    def plan(self) -> list[FolderWork]:
        return self.migration().plan()


def endpoints(request: SyncRequest) -> tuple[Location, Location]:
    problems: list[str] = []
    found: list[Location] = []
    for side in (request.source, request.target):
        try:
            found.append(
                parse_location(
                    side.url,
                    authuser=side.authuser,
                    allow_plaintext=request.allow_plaintext,
                    side=side.name,
                )
            )
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return found[0], found[1]


def profiles(request: SyncRequest, pair: tuple[Location, Location]) -> tuple[Profile, Profile]:
    """By host (or by name); files have no host: the generic profile unless one is named."""
    return (
        choose_profile(request.source.profile, _host(pair[0])),
        choose_profile(request.target.profile, _host(pair[1])),
    )


def _host(location: Location) -> str:
    return location.host if isinstance(location, Endpoint) else ""


def profiled_mapping(request: SyncRequest, pair: tuple[Location, Location]) -> MappingOptions:
    """The user's folder options plus the profiles' rules (see ``profiles.apply_profiles``)."""
    return apply_profiles(request.mapping, *profiles(request, pair))


def credentials(
    side: Side,
    endpoint: Endpoint,
    prompt: Callable[[str], str] | None,
    sign_in: SignInOptions | None = None,
) -> Credentials:
    """A token provider if the side names a token source, else a password (see ``password``).
    ``sign_in``: where a delegated source finds (or, interactively, makes) the user's sign-in."""
    try:
        method = AuthMethod(side.auth)
    except ValueError:
        choices = ", ".join(m.value for m in AuthMethod)
        raise ConfigError(f"--{side.name}-auth {side.auth!r}: expected one of {choices}") from None
    tokens = token_provider(side, endpoint, sign_in)
    if tokens is None:
        return _password_credentials(side, endpoint, prompt, method)
    if method is AuthMethod.PASSWORD:
        raise ConfigError(f"--{side.name}-auth password contradicts {side.token_sources[0]}")
    if endpoint.authuser:
        raise ConfigError(
            f"--{side.name}-authuser is for password logins; a token logs in as the URL's user"
        )
    if side.m365_delegated:
        # The first token now: a sign-in made inline (or the one-line instruction to make one)
        # comes before any connection is opened, so none waits on a person.
        tokens.token()
    return Credentials(tokens=tokens, method=method)


def _password_credentials(
    side: Side, endpoint: Endpoint, prompt: Callable[[str], str] | None, method: AuthMethod
) -> Credentials:
    if method in {AuthMethod.XOAUTH2, AuthMethod.OAUTHBEARER}:
        raise ConfigError(
            f"--{side.name}-auth {method.value} needs a token source: "
            f"--{side.name}-oauth-token-command, --{side.name}-m365-tenant with "
            f"--{side.name}-m365-client-id, --{side.name}-m365-delegated, or "
            f"--{side.name}-google-service-account-file"
        )
    return dataclasses.replace(password(side, endpoint, prompt), method=method)


def token_provider(
    side: Side, endpoint: Endpoint, sign_in: SignInOptions | None = None
) -> TokenProvider | None:
    try:
        names = oauth.SourceNames.options(f"--{side.name}-")
        return oauth.token_provider(token_source(side), endpoint.user, names, sign_in)
    except ConfigError as exc:
        raise ConfigError([f"{side.name}: {p}" for p in exc.problems]) from None


def sign_in_options(request: SyncRequest, side: Side) -> SignInOptions:
    """A delegated sign-in of ``side``: stored beside the state database, made with the URL."""
    return SignInOptions(request.state_path, side.url, request.show_sign_in)


def _label_export(account: MailAccount) -> bool:
    """A Google Takeout mbox, whose folders are Gmail labels. The files adapter is imported for a
    file side only: an IMAP-to-IMAP run does not load it (the command's start, issue #17)."""
    from mailferry.adapters.files import MboxAccount  # noqa: PLC0415 - see the docstring

    return isinstance(account, MboxAccount) and account.folders_are_labels


def token_source(side: Side) -> TokenSource:
    """The side's token source with its files read (what an endpoint stores, encrypted)."""
    return load_token_source(
        side.name,
        command=side.oauth_token_command,
        m365_tenant=side.m365_tenant,
        m365_client_id=side.m365_client_id,
        m365_client_secret_file=side.m365_client_secret_file,
        m365_certificate_file=side.m365_certificate_file,
        m365_authority=side.m365_authority,
        m365_graph_url=side.m365_graph_url,
        google_service_account_file=side.google_service_account_file,
        m365_delegated=side.m365_delegated,
    )


def load_token_source(
    who: str,
    *,
    command: str | None,
    m365_tenant: str | None,
    m365_client_id: str | None,
    m365_client_secret_file: Path | None,
    m365_certificate_file: Path | None,
    m365_authority: str,
    google_service_account_file: Path | None,
    m365_delegated: bool = False,
    m365_graph_url: str | None = None,
) -> TokenSource:
    """Read the token options' files (``who`` names them in errors): for ``mailferry sync`` and
    ``mailferry endpoint add`` alike."""

    def read(path: Path | None, what: str) -> str | None:
        return None if path is None else _read_secret(path, f"{who} {what}")

    return TokenSource(
        command=command or None,
        m365_tenant=m365_tenant or None,
        m365_client_id=m365_client_id or None,
        m365_client_secret=read(m365_client_secret_file, "client secret"),
        m365_certificate_pem=read(m365_certificate_file, "certificate"),
        m365_authority=m365_authority,
        m365_graph_url=(m365_graph_url or "").strip().rstrip("/") or None,
        google_service_account_json=read(google_service_account_file, "service account"),
        m365_delegated=m365_delegated,
    )


def _read_secret(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file: {exc.strerror}") from None
    except UnicodeError:
        raise ConfigError(f"{what} file {path}: not UTF-8 text") from None


def password(side: Side, endpoint: Endpoint, prompt: Callable[[str], str] | None) -> Credentials:
    """From the side's file, else its environment variable, else an interactive prompt."""
    if side.password_file is not None:
        try:
            text = side.password_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read {side.name} password file: {exc.strerror}") from None
        return Credentials(text.rstrip("\r\n"))
    if side.password_env in os.environ:
        return Credentials(os.environ[side.password_env])
    if prompt is not None:
        login = endpoint.authuser or endpoint.user
        return Credentials(prompt(f"Password for {login} at {endpoint.host} ({side.name})"))
    raise ConfigError(
        f"no {side.name} password: set {side.password_env} or use --{side.name}-password-file"
    )


@contextlib.contextmanager
def open_pair(request: SyncRequest, *, read_only: bool = False) -> Iterator[Pair]:
    """Connected accounts and the state store. ``read_only`` (dry runs, verify) never creates a
    state file; an existing one is read (Migration.plan and verify never write to it)."""
    source_ep, target_ep = endpoints(request)
    request = dataclasses.replace(
        request, mapping=profiled_mapping(request, (source_ep, target_ep))
    )
    state_path = request.state_path or default_state_path()
    store: StateStore
    if request.database:
        store = SqlStateStore(open_database(request.database))
    elif read_only and not state_path.exists():
        store = MemoryStateStore()
    else:
        store = SqlStateStore.open_sqlite(state_path)
    source_profile, target_profile = profiles(request, (source_ep, target_ep))
    connector = Connector(
        _login(request, request.source, source_ep, source_profile),
        _login(request, request.target, target_ep, target_profile),
        timeout=request.timeout,
        neutralise_receipts=request.neutralise_read_receipts,
    )
    with contextlib.ExitStack() as stack:
        stack.callback(store.close)
        stack.callback(connector.close_all)
        # Both logins at once: over a WAN each is several round trips. The source's failure is
        # the one reported; a target that opened meanwhile is closed with the connector.
        source, target = both(
            lambda: _first_session(connector.source, request.retry),
            lambda: _first_session(connector.target, request.retry),
        )
        if isinstance(source_ep, FileStore) and _label_export(source):
            source_profile = PROFILES["gmail"]  # a Takeout export: its folders are Gmail labels
        labels = label_policy(source_profile, request.labels)
        key = pair_key(source_ep, target_ep)
        yield Pair(request, source, target, store, key, connector, labels)


def _login(
    request: SyncRequest, side: Side, location: Location, profile: Profile
) -> Login | FileStore:
    """What the connector opens for a side: files as they are; a server with its credentials."""
    if isinstance(location, FileStore):
        return location
    creds = credentials(side, location, request.prompt, sign_in_options(request, side))
    return Login(location, creds, profile, _side_tls(side))


def _side_tls(side: Side) -> TlsOptions:
    return TlsOptions(ca_file=side.ca_file, insecure=side.insecure)


def _first_session(open_session: Callable[[], MailAccount], policy: RetryPolicy) -> MailAccount:
    """The first login: a server that says "slow down" (Exchange's login NO [THROTTLED]) is waited for
    within the retry budget; any other failure (unknown host, refused, TLS, wrong password) ends the
    run at once with its one-line reason. A daily cap is waited out like in a run (``cap_pause`` at a
    time, ``cap_max_pause`` in all) without spending the budget."""
    attempt = 0
    paused = 0.0
    while True:
        try:
            return open_session()
        except ThrottledError as exc:
            pause = max(policy.cap_pause, exc.wait)
            if exc.cap and paused + pause <= policy.cap_max_pause:
                paused += pause
                time.sleep(pause)
                continue
            if attempt == policy.attempts:
                raise
            time.sleep(policy.wait(attempt, exc.wait))
            attempt += 1


def run_sync(
    pair: Pair, progress: Progress | None = None, stop: threading.Event | None = None
) -> Summary:
    return pair.migration(progress, stop).run()


def run_verify(pair: Pair) -> VerifyReport:
    plan = plan_folders(pair.source, pair.target, pair.request.mapping, pair.store, pair.key)
    return verify(pair.source, pair.target, plan, pair.request.selection, pair.labels)


# -- the batch service, its scheduler, the web's logins ---------------------------------------------
# Their modules (the batch and auth tables, the key ring, the scheduler, the DAV and Graph jobs:
# ~0.25 s) are imported in the functions that build them: `mailferry sync` never does.
def state_database(state_path: Path, database: str | None = None) -> Database:
    """The one state database: ``database`` (a URL: ``--database``, $MAILFERRY_DATABASE) where
    given, else the SQLite file ``state_path`` (created if missing)."""
    return open_database(database) if database else open_database(sqlite_url(state_path))


def _queue() -> ModuleType:
    """The procrastinate queue adapter, imported where PostgreSQL is used: procrastinate and its
    psycopg connector take ~0.3 s to import, which every other command (and SQLite) is spared."""
    from mailferry.adapters.queue import procrastinate  # noqa: PLC0415 - see the docstring

    return procrastinate


def open_service(state_path: Path, database: str | None = None) -> BatchService:
    """The batch service: its tables in the state database, the key ring in the directory of
    ``state_path`` (a local directory, also when the tables are on a server)."""
    from mailferry.adapters.secrets import SecretBox  # noqa: PLC0415 - see _service
    from mailferry.adapters.store.batches import BatchStore  # noqa: PLC0415
    from mailferry.service.batches import BatchService  # noqa: PLC0415

    box = SecretBox.open(state_path.parent)
    service = BatchService(BatchStore(state_database(state_path, database)), box, state_path)
    if not service.store.db.is_sqlite:  # stop and delete reach the jobs on every worker
        service.jobs = _queue().JobAborter(service.store.db)
    return service


def open_auth_tables(state_path: Path, database: str | None = None) -> AuthTables:
    """The web app's login tables in the state database."""
    from mailferry.adapters.store.auth import AuthTables  # noqa: PLC0415 - see _service

    return AuthTables(state_database(state_path, database))


def upgrade_database(
    state_path: Path, database: str | None = None
) -> tuple[str, list[tuple[str, int | None, int]]]:
    """`mailferry db upgrade`: every component's tables created or brought up to date; where
    (no password), and (application, schema found, schema now) for each component."""
    from mailferry.adapters.store.schema import upgrade_all  # noqa: PLC0415 - see _service
    from mailferry.adapters.store.workers import WorkerTable  # noqa: PLC0415

    db = state_database(state_path, database)
    try:
        steps = upgrade_all(db)
        if not db.is_sqlite:  # the job queue of workers
            queue = _queue()
            created = queue.ensure_schema(db)
            steps.append((queue.QUEUE_SCHEMA, None if created else 1, 1))
        # Workers of another release are refused (service/workers.py): this one is the rule now.
        WorkerTable(db).record_release(__version__, time.time())
        return db.where, steps
    finally:
        db.release()


def service_auth_tables(service: BatchService) -> AuthTables:
    """The web app's login tables in the batch service's database (one more use of its Engine)."""
    from mailferry.adapters.store.auth import AuthTables  # noqa: PLC0415 - see _service

    return AuthTables(open_database(service.store.db.engine.url))


class BatchConnector:
    """The scheduler's ``JobConnector``: IMAP sessions for a job (its DAV accounts: ``dav``; its
    Microsoft 365 mailboxes through Graph: ``graph``, ``mailboxes``), and
    token providers shared the way their grants allow. One provider per endpoint (and settings)
    serves all its mailboxes: one app token serves the tenant. A Google token acts for one
    mailbox, a delegated Microsoft 365 token is the mailbox user's own (signed in with `mailferry
    login`): kept per mailbox."""

    def __init__(self, service: BatchService, timeout: float = 120.0) -> None:
        self._service = service
        self._timeout = timeout
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str, str], TokenProvider] = {}
        from mailferry.service.graphjobs import GraphAccesses  # noqa: PLC0415 - see _service

        self._graph = GraphAccesses()

    def tokens(self, record: EndpointRecord, user: str) -> TokenProvider | None:
        """The endpoint's shared provider (made on first use; --replace makes a new one)."""
        source = self._service.token_source(record)
        if source is None:
            return None
        key = (record.name, record.oauth or "", user if source.per_mailbox else "")
        with self._lock:
            provider = self._tokens.get(key)
            if provider is None:
                url = Endpoint(record.host, record.port, Security(record.security), user).display()
                sign_in = SignInOptions(self._service.state_path, url)  # never interactive here
                provider = oauth.token_provider(source, user, sign_in=sign_in)
                if provider is None:
                    return None
                self._tokens[key] = provider
            return provider

    def connect(self, job: Job) -> Connector:
        return Connector(
            _job_side(job.source, job.source_creds, job.source_profile, job.source_tls),
            _job_side(job.target, job.target_creds, job.target_profile, job.target_tls),
            timeout=self._timeout,
            neutralise_receipts=job.neutralise_read_receipts,
        )

    def dav(self, job: Job) -> DavLink:
        """The job's DAV accounts and the item state in the service's database."""
        from mailferry.bootstrap.davbatch import open_dav_link  # noqa: PLC0415 - it imports us

        return open_dav_link(job, self._service.store.db.engine.url)

    def graph(self, record: EndpointRecord) -> GraphAccess | None:
        """The endpoint's Graph access: its app token fetched once, its roles read."""
        return self._graph.get(record, self._service.token_source(record))

    def mailboxes(self, job: Job) -> MailboxLink:
        """The job's two Microsoft 365 mailboxes through Graph and the mailbox state."""
        from mailferry.bootstrap.graphbatch import open_mailbox_link  # noqa: PLC0415 - it imports us

        return open_mailbox_link(job, self._service.store.db.engine.url)


def _job_side(
    where: Location, creds: Credentials, profile: Profile | None, tls: TlsOptions
) -> Login | FileStore:
    """A job's side as the connector opens it: files as they are, a server with its login."""
    if isinstance(where, FileStore):
        return where
    return Login(where, creds, profile, tls)


def scheduler(service: BatchService, **options: Any) -> Scheduler:
    """The scheduler of ``service``: real IMAP sessions, the sync state in the service's file
    (the same Engine as its batch tables). ``options``: ``Scheduler``'s keyword arguments."""
    from mailferry.adapters.store.slots import AdvisoryLimiter  # noqa: PLC0415 - see _service
    from mailferry.service.scheduler import Scheduler  # noqa: PLC0415

    db = service.store.db
    connector = BatchConnector(service)

    def open_state() -> SqlStateStore:
        return SqlStateStore(open_database(db.engine.url))

    if not db.is_sqlite and "limiter" not in options:
        # Caps shared by every worker on the database (advisory locks), not counted per process.
        options["limiter"] = AdvisoryLimiter(db, service.capacity)
    if not db.is_sqlite and "queue" not in options:
        # On PostgreSQL the jobs go through the queue, and workers run them (run_worker).
        options["queue"] = _queue().JobFeeder(db)
    return Scheduler(service, connector, open_state, **options)
