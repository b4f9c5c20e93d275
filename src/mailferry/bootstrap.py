"""The composition root: turns a validated request into connected accounts, a state store and a Migration."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mailferry.adapters.imap import Credentials, ImapAccount, TlsOptions
from mailferry.adapters.memory_state import MemoryStateStore
from mailferry.adapters.sqlite_state import SqlStateStore
from mailferry.config import default_state_path, pair_key, parse_endpoint
from mailferry.domain.errors import ConfigError
from mailferry.domain.folders import MappingOptions
from mailferry.domain.model import Endpoint, Summary
from mailferry.domain.plan import Selection
from mailferry.domain.ports import StateStore
from mailferry.service.migrate import Migration, SyncOptions
from mailferry.service.planning import FolderWork, plan_folders
from mailferry.service.progress import Progress
from mailferry.service.resilience import RetryPolicy
from mailferry.service.verify import VerifyReport, verify


@dataclass(frozen=True)
class Side:
    url: str
    name: str  # "source" or "target"
    authuser: str | None = None
    password_env: str = ""
    password_file: Path | None = None
    ca_file: Path | None = None
    insecure: bool = False


@dataclass(frozen=True)
class SyncRequest:
    source: Side
    target: Side
    allow_plaintext: bool = False
    mapping: MappingOptions = field(default_factory=MappingOptions)
    selection: Selection = field(default_factory=Selection)
    state_path: Path | None = None
    dry_run: bool = False
    batch_size: int = 200
    connections: int = 1
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 120.0
    prompt: Callable[[str], str] | None = None


class Connector:
    """Opens sessions to both sides of a pair, any number of times (Migration reconnects with it),
    and closes every one it opened."""

    def __init__(
        self, request: SyncRequest, endpoints: tuple[Endpoint, Endpoint], creds: list[Credentials]
    ) -> None:
        self._request = request
        self._endpoints = endpoints
        self._creds = creds
        self._opened: list[ImapAccount] = []

    def source(self) -> ImapAccount:
        return self._open(0, readonly=True)

    def target(self) -> ImapAccount:
        return self._open(1, readonly=False)

    def _open(self, index: int, *, readonly: bool) -> ImapAccount:
        side = (self._request.source, self._request.target)[index]
        tls = TlsOptions(ca_file=side.ca_file, insecure=side.insecure)
        account = ImapAccount.connect(
            self._endpoints[index],
            self._creds[index],
            tls=tls,
            timeout=self._request.timeout,
            readonly=readonly,
        )
        self._opened.append(account)
        return account

    def close_all(self) -> None:
        while self._opened:
            self._opened.pop().close()


@dataclass
class Pair:
    request: SyncRequest
    source: ImapAccount
    target: ImapAccount
    store: StateStore
    key: str
    connector: Connector

    def migration(
        self, progress: Progress | None = None, stop: threading.Event | None = None
    ) -> Migration:
        options = SyncOptions(
            mapping=self.request.mapping,
            selection=self.request.selection,
            dry_run=self.request.dry_run,
            batch_count=self.request.batch_size,
            connections=self.request.connections,
            retry=self.request.retry,
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


def endpoints(request: SyncRequest) -> tuple[Endpoint, Endpoint]:
    problems: list[str] = []
    found: list[Endpoint] = []
    for side in (request.source, request.target):
        try:
            found.append(
                parse_endpoint(
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
    creds = [password(request.source, source_ep, request.prompt)]
    creds.append(password(request.target, target_ep, request.prompt))
    state_path = request.state_path or default_state_path()
    store: StateStore
    if read_only and not state_path.exists():
        store = MemoryStateStore()
    else:
        store = SqlStateStore.open_sqlite(state_path)
    connector = Connector(request, (source_ep, target_ep), creds)
    with contextlib.ExitStack() as stack:
        stack.callback(store.close)
        stack.callback(connector.close_all)
        source = connector.source()
        target = connector.target()
        yield Pair(request, source, target, store, pair_key(source_ep, target_ep), connector)


def run_sync(
    pair: Pair, progress: Progress | None = None, stop: threading.Event | None = None
) -> Summary:
    return pair.migration(progress, stop).run()


def run_verify(pair: Pair) -> VerifyReport:
    plan = plan_folders(pair.source, pair.target, pair.request.mapping, pair.store, pair.key)
    return verify(pair.source, pair.target, plan, pair.request.selection)
