"""Jinja filters: numbers as a person reads them."""

from __future__ import annotations

import datetime as dt

import jinja2

from mailferry.web.chart import human_rate

MISSING = "\u2013"  # an en dash: no value


def human_bytes(value: float | None) -> str:
    if value is None:
        return MISSING
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover - the loop returns


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return MISSING
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    minutes, sec = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def percent(value: float | None) -> str:
    return MISSING if value is None else f"{value * 100:.0f}%"


def rate(value: float | None) -> str:
    return MISSING if not value else human_rate(value)


def when(value: str | None) -> str:
    """An ISO time from the API shapes, shown in the server's local time."""
    if not value:
        return MISSING
    moment = dt.datetime.fromisoformat(value).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def register_filters(env: jinja2.Environment) -> None:
    env.filters.update(
        bytes=human_bytes, duration=human_duration, percent=percent, rate=rate, when=when
    )
