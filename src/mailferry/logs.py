"""Logging: structured events on stderr, set up once by the ``mailferry`` command (``configure``).

Code logs through ``get_logger(name)``: a structlog logger over the stdlib logger ``name`` (always
under ``mailferry.``), with stable event names and bound context::

    log = get_logger("mailferry.migrate").bind(pair=pair)
    log.info("folder.finished", folder="INBOX", copied=12)

Its records, plain ``logging`` records with ``extra=`` fields (the scheduler, the web app), and
uvicorn's all reach the one stderr handler ``configure`` installs, where structlog's
ProcessorFormatter renders them alike, as text or as one JSON object a line. Context bound with
``structlog.contextvars`` (a batch, a mailbox) joins every record of that thread. Before
``configure`` (tests, library use) nothing is set up here: stdlib logging's defaults apply.

Never a secret: ``redact`` replaces the value of every field whose name says it is one (password,
token, secret, authorization, ...), at any depth, in both formats. Tracebacks are rendered without
local variables for the same reason.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO, cast

# structlog's ``dev`` module, which ``import structlog`` loads, imports rich when it is installed,
# for a traceback printer this module never uses (``formatter`` passes ``plain_traceback``): rich's
# console, its traceback module, pygments and attrs, at every start of the command. rich is hidden
# from it while it loads; the command line imports rich itself when it prints for a person
# (cli/console.py). With both, ``mailferry --version`` takes ~35 ms less CPU (benchmarks/README.md,
# "Many folders").
_HIDE_RICH = "rich" not in sys.modules
if _HIDE_RICH:
    sys.modules["rich"] = None  # type: ignore[assignment]  # "import rich" raises ImportError
try:
    import structlog
    from structlog.typing import EventDict, Processor, WrappedLogger
finally:
    if _HIDE_RICH:
        del sys.modules["rich"]

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
LEVEL_ENV = "MAILFERRY_LOG_LEVEL"
ROOT = "mailferry"
REDACTED = "[redacted]"
# A field whose lowercased name contains one of these never shows its value.
SECRET_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "authorization",
    "cookie",
    "credential",
    "api_key",
    "apikey",
    "private_key",
)

# What a structlog logger does before the record reaches stdlib logging: drop what the level
# filters out, pick up context variables, hand the event dict to the ProcessorFormatter.
_HANDOFF: list[Processor] = [
    structlog.stdlib.filter_by_level,
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
]


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger writing to the stdlib logger ``name``; needs no global configuration.

    The proxy structlog returns builds its logger at first use and keeps it (uncached, it built
    one for every ``bind`` and every call)."""
    return cast(
        "structlog.stdlib.BoundLogger",
        structlog.wrap_logger(
            logging.getLogger(name),
            processors=_HANDOFF,
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=True,
        ),
    )


# Context for every record of this thread while the ``with`` lasts (``pair``, ``batch``, ``mailbox``).
bound_context = structlog.contextvars.bound_contextvars


def is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in SECRET_WORDS)


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Processor: the value of every secret-named field, at any depth, becomes ``[redacted]``."""
    return cast("EventDict", _redacted(event_dict))


def _redacted(value: Any) -> Any:
    if isinstance(value, Mapping):
        out: MutableMapping[Any, Any] = {}
        for key, item in value.items():
            out[key] = REDACTED if isinstance(key, str) and is_secret(key) else _redacted(item)
        return out
    if isinstance(value, list | tuple):
        return type(value)(_redacted(item) for item in value)
    return value


def formatter(fmt: str) -> structlog.stdlib.ProcessorFormatter:
    """Renders structlog and plain ``logging`` records alike (``fmt``: text or json)."""
    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(default=str, sort_keys=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    tail: list[Processor] = [structlog.processors.format_exc_info] if fmt == "json" else []
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.ExtraAdder(),
        ],
        processors=[
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redact,
            *tail,
            renderer,
        ],
    )


class _Handler(logging.StreamHandler[TextIO]):
    """The handler ``configure`` installs: a second call replaces it. Without a stream of its own
    it writes to the ``sys.stderr`` of the moment (click's test runner swaps it per run)."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream or sys.stderr)
        self._own = stream

    def emit(self, record: logging.LogRecord) -> None:
        if self._own is None:
            self.stream = sys.stderr
        super().emit(record)


def configure(level: str = "warning", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Send every record to ``stream`` (default stderr): mailferry's from ``level`` up, other
    libraries' from warning up (their debug output carries protocol traffic: messages, logins)."""
    if level not in LEVELS or fmt not in FORMATS:
        raise ValueError(f"log level {level!r} / format {fmt!r}")
    handler = _Handler(stream)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = logging.getLevelNamesMapping()[level.upper()]
    root.setLevel(max(numeric, logging.WARNING))
    # Below warning only mailferry's own loggers open up; else they follow the root.
    logging.getLogger(ROOT).setLevel(numeric if numeric < logging.WARNING else logging.NOTSET)
