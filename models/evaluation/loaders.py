"""Readers of the shared public datasets and of the project's JSONL, as schema-v1 events in time order.

Every loader sorts by event time (stably, so file order breaks ties) because the protocols replay a
stream. Events of a predefined test part carry ``properties={"split": "test"}``; see :func:`is_test`.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "x_train_full.txt").write_text("SessionId\\tItemId\\tTime\\n1\\t7\\t1396437466.9\\n")
>>> _ = (folder / "x_test.txt").write_text("SessionId\\tItemId\\tTime\\n2\\t7\\t1396831793.1\\n")
>>> [(e.session_id, e.item_id, is_test(e)) for e in load_yoochoose(folder)]
[('1', '7', False), ('2', '7', True)]
"""

from __future__ import annotations

import csv
import gzip
import io
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import orjson

from shopstream.models.events import EVENT_TYPES, Event, parse_event

TEST = "test"
#: Online Retail StockCodes that are fees, postage or adjustments, not products (baselines.md).
NON_PRODUCT_CODES = frozenset({"POST", "D", "M", "DOT", "BANK CHARGES", "C2", "PADS", "AMAZONFEE", "CRUK", "S", "B"})
RETAILROCKET_EVENTS = {"view": "view", "addtocart": "add_to_cart", "transaction": "purchase"}
SESSION_GAP_S = 30 * 60.0


def is_test(event: Event) -> bool:
    """Whether the event belongs to a dataset's predefined test part."""
    return bool(event.properties) and event.properties.get("split") == TEST  # type: ignore[union-attr]


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _in_time_order(events: list[Event]) -> Iterator[Event]:
    events.sort(key=lambda e: e.ts)
    return iter(events)


def _yoochoose_part(path: Path, prefix: str, test: bool) -> list[Event]:
    events = []
    with _open_text(path) as f:
        rows = csv.reader(f, delimiter="\t")
        if next(rows, None) != ["SessionId", "ItemId", "Time"]:
            raise ValueError(f"{path}: expected the header SessionId ItemId Time")
        for n, (session, item, ts) in enumerate(rows):
            events.append(
                Event(f"{prefix}{n}", float(ts), session, "view", item, properties={"split": TEST} if test else None)
            )
    events.sort(key=lambda e: e.ts)
    return events


def load_yoochoose(path: str | Path) -> Iterator[Event]:
    """The session-rec split: ``*_train_full.txt`` in time order, then ``*_test.txt`` marked as test.

    ``path`` is the folder holding both files, or the train file (the test file sits beside it).
    """
    path = Path(path)
    train = next(path.glob("*_train_full.txt")) if path.is_dir() else path
    test = train.with_name(train.name.replace("_train_full.txt", "_test.txt"))
    yield from _yoochoose_part(train, "train-", test=False)
    yield from _yoochoose_part(test, "test-", test=True)


def load_online_retail(path: str | Path) -> Iterator[Event]:
    """UCI Online Retail purchases cleaned as baselines.md says, one event per distinct
    (customer, item, timestamp): user = CustomerID, session = InvoiceNo, quantities summed.

    Cancellations (invoices starting with ``C``) are dropped, not netted: the recommendation protocol
    asks what a customer buys next, and the cancelled order was still chosen.
    """
    merged: dict[tuple[str, str, str], Event] = {}
    stamps: dict[str, float] = {}  # a date string recurs on every line of its invoice
    with _open_text(Path(path)) as f:
        for row in csv.DictReader(f):
            customer = (row["CustomerID"] or "").strip().removesuffix(".0")
            code = row["StockCode"].strip()
            quantity, price = int(float(row["Quantity"])), float(row["UnitPrice"])
            invoice = row["InvoiceNo"].strip()
            if (
                not customer
                or invoice.startswith("C")
                or quantity <= 0
                or price <= 0
                or code in NON_PRODUCT_CODES
                or not any(c.isdigit() for c in code)
            ):
                continue
            key = (customer, code, row["InvoiceDate"])
            seen = merged.get(key)
            if seen is not None:
                seen.quantity = (seen.quantity or 0) + quantity
                continue
            date = row["InvoiceDate"]
            ts = stamps.get(date)
            if ts is None:
                ts = stamps[date] = datetime.fromisoformat(date).replace(tzinfo=UTC).timestamp()
            merged[key] = Event(
                f"or-{len(merged)}", ts, invoice, "purchase", code, user_id=customer, price=price, quantity=quantity
            )
    return _in_time_order(list(merged.values()))


def load_retailrocket(path: str | Path) -> Iterator[Event]:
    """RetailRocket, either the sample layout (``timestamp user_id item_id session_id``, tab-separated,
    seconds, all views) or Kaggle's ``events.csv`` (``timestamp,visitorid,event,itemid,transactionid``,
    milliseconds), whose sessions are cut here at 30 minutes of inactivity per visitor.
    """
    path = Path(path)
    with _open_text(path) as f:
        header = f.readline().strip()
        if header.split("\t") == ["timestamp", "user_id", "item_id", "session_id"]:
            rows = csv.reader(f, delimiter="\t")
            events = [
                Event(f"rr-{n}", float(ts), session, "view", item, user_id=user)
                for n, (ts, user, item, session) in enumerate(rows)
            ]
            return _in_time_order(events)
        if header.split(",")[:4] != ["timestamp", "visitorid", "event", "itemid"]:
            raise ValueError(f"{path}: not a RetailRocket layout (header {header[:60]!r})")
        raw = [(float(r[0]) / 1000.0, r[1], r[2], r[3]) for r in csv.reader(f)]
    raw.sort(key=lambda r: r[0])
    last_seen: dict[str, tuple[float, int]] = {}
    events = []
    for n, (ts, visitor, kind, item) in enumerate(raw):
        previous = last_seen.get(visitor)
        number = 0 if previous is None else previous[1] + (ts - previous[0] > SESSION_GAP_S)
        last_seen[visitor] = (ts, number)
        events.append(Event(f"rr-{n}", ts, f"{visitor}-{number}", RETAILROCKET_EVENTS[kind], item, user_id=visitor))
    return iter(events)


#: Header names ``load_tsv`` accepts for each column, any letter case.
TSV_COLUMNS = {
    "session": ("sessionid", "session_id", "session"),
    "item": ("itemid", "item_id", "item"),
    "ts": ("time", "timestamp", "ts"),
    "type": ("type", "event", "event_type"),
    "user": ("userid", "user_id", "user"),
}


def load_tsv(path: str | Path) -> Iterator[Event]:
    """Any tab-separated click log whose header names a session, an item and a time column (Unix
    seconds), and optionally an event type (schema-v1 names; default view) and a user column.

    Names are matched case-insensitively against :data:`TSV_COLUMNS`, so session-rec's
    ``SessionId ItemId Time`` and RetailRocket's sample layout both load; a missing column or a bad
    row raises ``ValueError`` naming the line.
    """
    path = Path(path)
    with _open_text(path) as f:
        rows = csv.reader(f, delimiter="\t")
        header = [name.strip().lower() for name in next(rows, [])]
        where = {key: next((header.index(n) for n in names if n in header), None) for key, names in TSV_COLUMNS.items()}
        missing = [key for key in ("session", "item", "ts") if where[key] is None]
        if missing:
            raise ValueError(f"{path}: header {header} has no {' / '.join(missing)} column (names: {TSV_COLUMNS})")
        s, i, t, kind, user = (where[key] for key in ("session", "item", "ts", "type", "user"))
        events = []
        for line_no, row in enumerate(rows, 2):
            try:
                events.append(Event(
                    f"tsv-{line_no}", float(row[t]), row[s], row[kind] if kind is not None else "view", row[i],
                    user_id=row[user] or None if user is not None else None,
                ))
            except (IndexError, ValueError) as exc:
                raise ValueError(f"{path}:{line_no}: {exc}") from exc
            if events[-1].type not in EVENT_TYPES or not events[-1].session_id or not events[-1].item_id:
                raise ValueError(f"{path}:{line_no}: empty id or unknown event type {events[-1].type!r}")
    return _in_time_order(events)


def split_by_time(events: Iterable[Event], test_days: float) -> Iterator[Event]:
    """Mark as test every session whose last click falls in the log's last ``test_days`` days, as
    session-rec splits its data; any predefined split is replaced.

    >>> clicks = [Event(f"e{n}", day * 86_400.0, s, "view", "x") for n, (day, s) in enumerate(
    ...           [(0, "a"), (1, "b"), (2, "a"), (3, "c")])]
    >>> [(e.session_id, is_test(e)) for e in split_by_time(clicks, test_days=1.5)]
    [('a', True), ('b', False), ('a', True), ('c', True)]
    """
    if test_days <= 0:
        raise ValueError(f"test_days must be positive, got {test_days}")
    events = list(events)
    last: dict[str, float] = {}
    for event in events:
        last[event.session_id] = max(event.ts, last.get(event.session_id, event.ts))
    cut = max(last.values(), default=0.0) - test_days * 86_400.0
    for event in events:
        properties = {k: v for k, v in (event.properties or {}).items() if k != "split"}
        if last[event.session_id] > cut:
            properties["split"] = TEST
        event.properties = properties or None
        yield event


def load_jsonl(path: str | Path, now: float | None = None) -> Iterator[Event]:
    """The project's own log: one schema-v1 event per line, validated by ``parse_event``.

    ``now`` (default: the wall clock when called) bounds future timestamps, so a replay of an old
    log is accepted; an invalid line raises ``ValueError`` naming the line, as a bad log should.
    """
    clock = time.time() if now is None else now
    events = []
    with _open_text(Path(path)) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                events.append(parse_event(orjson.loads(line), now=clock))
            except ValueError as exc:  # orjson.JSONDecodeError and InvalidEvent are ValueErrors
                raise ValueError(f"{path}:{line_no}: {exc}") from exc
    return _in_time_order(events)
