"""Throughput over time for a batch, as an inline SVG drawn on the server (no JS, no build).

Each finished run spreads the bytes it copied evenly over its own span; each running mailbox
spreads the bytes done so far over its span up to now. Summed into buckets, that is the batch's
rate over time, from the run history alone: no sampler to keep running, nothing lost on restart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mailferry.adapters.store.records import MailboxRecord

BUCKETS = 60
WIDTH, HEIGHT = 720, 180
PAD_LEFT, PAD_BOTTOM, PAD_TOP = 70, 24, 10


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    nbytes: int


@dataclass(frozen=True)
class Series:
    start: float
    end: float
    rates: list[float]  # bytes per second in each bucket

    @property
    def peak(self) -> float:
        return max(self.rates, default=0.0)


def spans(
    runs: Sequence[dict[str, Any]], running: Sequence[MailboxRecord], now: float
) -> list[Span]:
    found = []
    for run in runs:
        try:
            nbytes = int(json.loads(run["summary"]).get("bytes_copied", 0))
        except (ValueError, TypeError, AttributeError):
            nbytes = 0
        found.append(Span(float(run["started"]), float(run["finished"]), nbytes))
    found += [Span(m.started, now, m.done_bytes) for m in running if m.started is not None]
    return found


def series(found: Sequence[Span], buckets: int = BUCKETS) -> Series | None:
    if not found:
        return None
    start = min(s.start for s in found)
    end = max(*(s.end for s in found), start + 1.0)
    width = (end - start) / buckets
    moved = [0.0] * buckets
    for span in found:
        length = max(span.end - span.start, 1e-6)
        for i in range(buckets):
            lo, hi = start + i * width, start + (i + 1) * width
            overlap = min(hi, span.end) - max(lo, span.start)
            if overlap > 0:
                moved[i] += span.nbytes * overlap / length
            elif span.end == span.start and lo <= span.start < hi:
                moved[i] += span.nbytes
    return Series(start, end, [b / width for b in moved])


def human_rate(rate: float) -> str:
    for unit in ("B/s", "KB/s", "MB/s", "GB/s"):
        if rate < 1000 or unit == "GB/s":
            return f"{rate:.0f} {unit}" if unit == "B/s" else f"{rate:.1f} {unit}"
        rate /= 1000
    return f"{rate:.1f} GB/s"  # pragma: no cover - the loop returns


def _clock(moment: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(moment))


def svg(data: Series | None) -> str:
    """The chart, or an empty-state sentence; all text is numbers and times (nothing to escape)."""
    if data is None or data.peak <= 0:
        return '<p class="empty">No data copied yet: the chart fills in as mailboxes sync.</p>'
    plot_w, plot_h = WIDTH - PAD_LEFT - 10, HEIGHT - PAD_BOTTOM - PAD_TOP
    step = plot_w / (len(data.rates) - 1 if len(data.rates) > 1 else 1)
    points = [
        (PAD_LEFT + i * step, PAD_TOP + plot_h - plot_h * rate / data.peak)
        for i, rate in enumerate(data.rates)
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    base = PAD_TOP + plot_h
    area = f"{PAD_LEFT},{base} {line} {points[-1][0]:.1f},{base}"
    label = (
        f"Throughput from {_clock(data.start)} to {_clock(data.end)}; peak {human_rate(data.peak)}"
    )
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}">'
        f"<title>{label}</title>"
        f'<line class="axis" x1="{PAD_LEFT}" y1="{base}" x2="{WIDTH - 10}" y2="{base}"/>'
        f'<line class="axis" x1="{PAD_LEFT}" y1="{PAD_TOP}" x2="{PAD_LEFT}" y2="{base}"/>'
        f'<line class="grid" x1="{PAD_LEFT}" y1="{PAD_TOP}" x2="{WIDTH - 10}" y2="{PAD_TOP}"/>'
        f'<polygon class="area" points="{area}"/>'
        f'<polyline class="line" points="{line}"/>'
        f'<text x="{PAD_LEFT - 6}" y="{PAD_TOP + 10}" text-anchor="end">{human_rate(data.peak)}</text>'
        f'<text x="{PAD_LEFT - 6}" y="{base}" text-anchor="end">0</text>'
        f'<text x="{PAD_LEFT}" y="{HEIGHT - 6}">{_clock(data.start)}</text>'
        f'<text x="{WIDTH - 10}" y="{HEIGHT - 6}" text-anchor="end">{_clock(data.end)}</text>'
        "</svg>"
    )
