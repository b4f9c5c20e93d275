"""Batch reports: one row per mailbox (CSV or JSON) and the per-message failure list.

Report cells come from servers and from the CSV (folder names, server replies, addresses): a
spreadsheet would run a cell starting with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage
return hiding one) as a formula, so such cells get a leading ``'`` (OWASP's CSV-injection advice).
JSON is left as it is: it is data, not a spreadsheet.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> str:
    """The cell text, with a ``'`` before anything a spreadsheet would evaluate."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)  # a negative number is a number, not a formula
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def render_csv(columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([neutralise(row.get(column)) for column in columns])
    return buffer.getvalue()
