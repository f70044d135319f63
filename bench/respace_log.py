"""Write a click log again with a coarse, even clock: sessions start evenly over ``--days``, each
session's clicks ``--step`` seconds apart, order of sessions and of clicks kept.

Some shops only log dates, or export evenly spaced stamps; a long log with few sessions an hour is
where neighbour memory bounded by time (rather than by capacity) loses most of what it needs. The
output is the TSV ``shopstream evaluate --dataset tsv`` reads.

    python -m shopstream.bench.respace_log --dataset yoochoose --path ../shared/data/yoochoose-100k \
        --days 150 --out /tmp/yoochoose-150d.tsv
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from pathlib import Path

from shopstream.models.evaluation.run import LOADERS
from shopstream.models.events import Event


def respace(events: Iterable[Event], days: float, step_s: float = 60.0) -> Iterator[tuple[str, str, float]]:
    """``(session, item, ts)`` rows, sessions by their first click, started evenly over ``days``.

    >>> clicks = [Event(f"e{n}", ts, s, "view", i) for n, (ts, s, i) in enumerate([(5, "a", "x"), (9, "b", "y"),
    ...           (100, "a", "z")])]
    >>> list(respace(clicks, days=1, step_s=10))
    [('a', 'x', 0.0), ('a', 'z', 10.0), ('b', 'y', 43200.0)]
    """
    sessions: dict[str, list[str]] = {}
    for event in events:
        sessions.setdefault(event.session_id, []).append(event.item_id)
    gap = days * 86_400.0 / max(len(sessions), 1)
    for n, (session, items) in enumerate(sessions.items()):
        for position, item in enumerate(items):
            yield session, item, n * gap + position * step_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(LOADERS), required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--days", type=float, required=True, help="span the sessions' starts are spread over")
    parser.add_argument("--step", type=float, default=60.0, help="seconds between a session's clicks")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = sorted(respace(LOADERS[args.dataset](args.path), args.days, args.step), key=lambda row: row[2])
    with args.out.open("w", encoding="utf-8") as f:
        f.write("SessionId\tItemId\tTime\n")
        f.writelines(f"{session}\t{item}\t{ts:.0f}\n" for session, item, ts in rows)
    print(f"{len(rows):,} clicks written to {args.out}")


if __name__ == "__main__":
    main()
