"""Plain-text tables of evaluation results, for the terminal and for pasting into notes.

>>> print(format_table({"pop": {"cases": 2, "hr@20": 0.5, "mrr@20": 0.25, "coverage": 0.1,
...                             "events_per_s": 1234.5}}))
| model | cases | hr@20 | mrr@20 | coverage | events/s |
| --- | --- | --- | --- | --- | --- |
| pop | 2 | 0.500 | 0.250 | 0.100 | 1,234 |
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_HIDDEN = {"events"}


def format_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """A Markdown table, one row per model, metrics in the order the first model reports them."""
    if not results:
        return "(no models)"
    columns = [c for c in next(iter(results.values())) if c not in _HIDDEN]
    header = ["model", *(("events/s" if c == "events_per_s" else c) for c in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name, row in results.items():
        cells = [name, *(_cell(c, row.get(c)) for c in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if column == "events_per_s":
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
