"""Event schema v1: the contract between web trackers, the collector and the models.

Validation is strict because a bad event that slips through poisons models for every user;
each rejection carries a machine-readable ``reason`` so the dead-letter topic can be triaged.

>>> ev = parse_event({"event_id": "e1", "ts": 1_700_000_000, "session_id": "s1",
...                   "type": "view", "item_id": "42"}, now=1_700_000_000)
>>> ev.type, ev.user_id
('view', None)
>>> parse_event({"event_id": "e1", "ts": 1_700_000_000, "type": "view", "item_id": "42"},
...             now=1_700_000_000)
Traceback (most recent call last):
...
shopstream.models.events.InvalidEvent: missing_field: session_id is required
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

import msgspec
import orjson

SCHEMA_VERSION = 1
EventType = Literal["view", "add_to_cart", "remove_from_cart", "purchase", "impression"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
MAX_ID_LENGTH = 128
MAX_EVENT_BYTES = 8192
MAX_PROPERTIES = 32
MAX_PROPERTIES_DEPTH = 8
EARLIEST_TS = 946_684_800.0  # 2000-01-01: anything older is a unit or clock bug
#: The kinds of list an impression or click may name (the ranked kinds of contracts/lists.py).
SURFACES = ("session", "user", "item", "trending", "category")
MAX_STRATEGY_LENGTH = 64
MAX_LIST_POSITION = 1000


@dataclass(frozen=True, slots=True)
class EventLimits:
    """The value bounds of schema v1 that a deployment may tune (``SHOPSTREAM_MAX_*``, docs/events.md).

    They exist for the shared aggregates: one event with a price of 1e308, a quantity of 2**64 - 1 or a
    timestamp an hour ahead would otherwise blow up or stall what every shopper is served. A ``ts`` up to
    ``max_future_skew_s`` ahead of the parser's clock is set to the clock (client clocks drift); further
    ahead it is rejected, so event time never runs ahead of the wall clock.
    """

    max_future_skew_s: float = 300.0
    max_price: float = 1_000_000.0
    max_quantity: int = 10_000


DEFAULT_LIMITS = EventLimits()
_REQUIRED_IDS = ("event_id", "session_id", "item_id")
_OPTIONAL_IDS = ("user_id", "category")


class InvalidEvent(ValueError):
    """A rejected event; ``reason`` is a stable code, ``field`` names the culprit if there is one."""

    def __init__(self, reason: str, detail: str, field: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.field = field

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "field": self.field, "detail": self.detail}


_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
#: msgspec takes no integer bound beyond int64. Unbounded, it would accept quantities beyond 2**64 - 1, which
#: orjson decodes as floats and parse_event rejects; the deployment's bound (EventLimits) is checked in Python.
_MAX_QUANTITY = 2**63 - 1


class ListRef(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The ``list`` field: which served list an item was shown in (an ``impression``) or clicked from (a
    ``view``), as the list's payload named it, so outcomes can be credited to the strategy that chose it."""

    surface: Annotated[str, msgspec.Meta(min_length=1, max_length=16)]
    strategy: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_STRATEGY_LENGTH)]
    position: Annotated[int, msgspec.Meta(ge=0, le=MAX_LIST_POSITION)] | None = None
    request_id: _Id | None = None
    propensity: Annotated[float, msgspec.Meta(gt=0, le=1)] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in msgspec.structs.asdict(self).items() if v is not None}


class Event(msgspec.Struct, tag_field="v", tag=SCHEMA_VERSION, forbid_unknown_fields=True):
    """One validated clickstream event; ``ts`` is Unix seconds.

    A msgspec struct so that :func:`parse_record` decodes a record straight into Events: the annotations are
    the part of schema v1 that msgspec enforces in C while decoding (``v`` is the tag, optional on the wire).
    Constructing an Event in code validates nothing; parse_event and parse_record do.
    """

    event_id: _Id
    ts: float
    session_id: _Id
    type: EventType
    item_id: _Id
    user_id: _Id | None = None
    price: Annotated[float, msgspec.Meta(ge=0)] | None = None
    quantity: Annotated[int, msgspec.Meta(gt=0, le=_MAX_QUANTITY)] | None = None
    category: _Id | None = None
    properties: dict[str, Any] | None = None
    list_ref: ListRef | None = msgspec.field(default=None, name="list")

    def to_dict(self) -> dict[str, Any]:
        """The wire form (schema v1), without absent optional fields."""
        wire = {k: v for k, v in msgspec.structs.asdict(self).items() if v is not None}
        if self.list_ref is not None:
            del wire["list_ref"]
            wire["list"] = self.list_ref.to_dict()
        return wire


_KNOWN_FIELDS = frozenset({*Event.__struct_encode_fields__, "v"})
_LIST_FIELDS = frozenset(ListRef.__struct_fields__)


def _check_id(raw: dict[str, Any], name: str, required: bool) -> str | None:
    value = raw.get(name)
    if value is None:
        if required:
            raise InvalidEvent("missing_field", f"{name} is required", name)
        return None
    if not isinstance(value, str):
        raise InvalidEvent("wrong_type", f"{name} must be a string, got {type(value).__name__}", name)
    if not 0 < len(value) <= MAX_ID_LENGTH or not value.isprintable():
        raise InvalidEvent("bad_id", f"{name} must be 1-{MAX_ID_LENGTH} printable characters", name)
    return value


def _parse_ts(value: Any, now: float, limits: EventLimits) -> float:
    if isinstance(value, bool) or value is None:
        raise InvalidEvent("missing_field" if value is None else "wrong_type", "ts is required", "ts")
    if isinstance(value, int | float):
        ts = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidEvent("bad_timestamp", "ts is not ISO 8601", "ts") from None
        if parsed.tzinfo is None:
            raise InvalidEvent("bad_timestamp", "ts in ISO 8601 needs a timezone", "ts")
        try:
            ts = parsed.timestamp()
        except (OverflowError, ValueError):  # a year the platform's time functions cannot place
            raise InvalidEvent("bad_timestamp", "ts is outside the platform's range", "ts") from None
    else:
        raise InvalidEvent("wrong_type", "ts must be Unix seconds or an ISO 8601 string", "ts")
    if not _ts_in_range(ts, now, limits):
        detail = f"ts {str(value)[:40]!r} is outside 2000-01-01 .. now + {limits.max_future_skew_s:g} s"
        raise InvalidEvent("bad_timestamp", detail, "ts")
    return min(ts, now)


def _ts_in_range(ts: float, now: float, limits: EventLimits) -> bool:
    """False for NaN and infinities too."""
    return EARLIEST_TS <= ts <= now + limits.max_future_skew_s


def _optional_number(raw: dict[str, Any], name: str, integer: bool, bound: float) -> Any:
    value = raw.get(name)
    if value is None:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise InvalidEvent("wrong_type", f"{name} must be {'an integer' if integer else 'a number'}", name)
    # Compared, not converted: math.isfinite of an integer beyond floats raises; NaN fails every comparison.
    if not (1 if integer else 0) <= value <= bound:
        low = "1" if integer else "0"
        raise InvalidEvent("bad_value", f"{name} must be between {low} and {bound:g}", name)
    return int(value) if integer else float(value)


def _depth(value: Any) -> int:
    """Nesting depth of decoded JSON (a scalar is 0), without recursion."""
    deepest, level = 0, [(value, 1)]
    while level:
        node, depth = level.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                level.append((child, depth + 1))
        deepest = max(deepest, depth)
    return deepest


def _check_properties(properties: Any) -> None:
    if isinstance(properties, dict):
        try:
            size = len(orjson.dumps(properties))
        except orjson.JSONEncodeError:  # nested beyond orjson's depth limit (254), or text it cannot encode
            raise InvalidEvent("bad_value", "properties cannot be encoded as JSON", "properties") from None
        if size > MAX_EVENT_BYTES:
            raise InvalidEvent("too_large", f"properties exceed {MAX_EVENT_BYTES} bytes", "properties")
        if _depth(properties) > MAX_PROPERTIES_DEPTH:  # an event must encode inside a record, and a dead letter
            detail = f"properties nest deeper than {MAX_PROPERTIES_DEPTH} levels"
            raise InvalidEvent("bad_value", detail, "properties")
    if not isinstance(properties, dict) or len(properties) > MAX_PROPERTIES:
        detail = f"properties must be an object of <= {MAX_PROPERTIES} keys"
        raise InvalidEvent("bad_value", detail, "properties")


def _parse_list(value: Any) -> ListRef:
    """The ``list`` object: a known surface, a short printable strategy name, numbers in range."""
    if not isinstance(value, dict):
        raise InvalidEvent("wrong_type", "list must be an object", "list")
    if unknown := value.keys() - _LIST_FIELDS:
        raise InvalidEvent("unknown_field", f"unknown list fields: {sorted(unknown)[:5]}", "list")
    surface, strategy = value.get("surface"), value.get("strategy")
    if surface not in SURFACES:
        raise InvalidEvent("bad_value", f"list.surface must be one of {SURFACES}", "list")
    if not isinstance(strategy, str) or not 0 < len(strategy) <= MAX_STRATEGY_LENGTH or not strategy.isprintable():
        raise InvalidEvent("bad_value", f"list.strategy must be 1-{MAX_STRATEGY_LENGTH} printable characters", "list")
    position, propensity, request_id = value.get("position"), value.get("propensity"), value.get("request_id")
    if position is not None and (
        isinstance(position, bool) or not isinstance(position, int) or not 0 <= position <= MAX_LIST_POSITION
    ):
        raise InvalidEvent("bad_value", f"list.position must be an integer in 0..{MAX_LIST_POSITION}", "list")
    if propensity is not None and (
        isinstance(propensity, bool) or not isinstance(propensity, int | float) or not 0 < propensity <= 1
    ):
        raise InvalidEvent("bad_value", "list.propensity must be a number in (0, 1]", "list")
    if request_id is not None and (
        not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_ID_LENGTH or not request_id.isprintable()
    ):
        raise InvalidEvent("bad_value", f"list.request_id must be 1-{MAX_ID_LENGTH} printable characters", "list")
    return ListRef(surface, strategy, position, request_id, None if propensity is None else float(propensity))


def parse_event(raw: Any, now: float | None = None, limits: EventLimits = DEFAULT_LIMITS) -> Event:
    """Validate one decoded JSON object against schema v1; raise :class:`InvalidEvent` otherwise.

    ``now`` is injectable so that tests and replays of old logs can set the clock; a ``ts`` ahead of it
    (within ``limits.max_future_skew_s``) comes back as ``now``.
    """
    if not isinstance(raw, dict):
        raise InvalidEvent("not_an_object", f"an event is a JSON object, got {type(raw).__name__}")
    unknown = raw.keys() - _KNOWN_FIELDS
    if unknown:
        raise InvalidEvent("unknown_field", f"unknown fields: {sorted(unknown)[:5]}", sorted(unknown)[0])
    if raw.get("v", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise InvalidEvent("bad_version", f"schema version {raw.get('v')!r} is not {SCHEMA_VERSION}", "v")
    event_id, session_id, item_id = [_check_id(raw, name, True) for name in _REQUIRED_IDS]
    user_id, category = [_check_id(raw, name, False) for name in _OPTIONAL_IDS]
    etype = raw.get("type")
    if etype is None:
        raise InvalidEvent("missing_field", "type is required", "type")
    if etype not in EVENT_TYPES:
        raise InvalidEvent("unknown_type", f"type {str(etype)[:40]!r} is not one of {EVENT_TYPES}", "type")
    properties = raw.get("properties")
    if properties is not None:
        _check_properties(properties)
    return Event(
        event_id=event_id,  # type: ignore[arg-type]
        ts=_parse_ts(raw.get("ts"), time.time() if now is None else now, limits),
        session_id=session_id,  # type: ignore[arg-type]
        type=etype,
        item_id=item_id,  # type: ignore[arg-type]
        user_id=user_id,
        price=_optional_number(raw, "price", integer=False, bound=limits.max_price),
        quantity=_optional_number(raw, "quantity", integer=True, bound=limits.max_quantity),
        category=category,
        properties=properties,
        list_ref=None if raw.get("list") is None else _parse_list(raw["list"]),
    )


def encode_events(events: list[dict[str, Any]]) -> bytes:
    """One Kafka record's value: a JSON array of events, each session's in order.

    Several events per record is the wire design (see docs/events.md): the per-record cost of the
    stream runtime is paid once per record, not once per event.
    """
    return orjson.dumps(events)


def decode_events(payload: bytes) -> list[Any]:
    """The raw events a record carries (a JSON array, or a single object); not yet validated.

    >>> decode_events(b'[{"a": 1}, {"a": 2}]')
    [{'a': 1}, {'a': 2}]
    >>> decode_events(b'{"a": 1}')
    [{'a': 1}]
    """
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("invalid_json", str(exc)[:200]) from None
    return value if isinstance(value, list) else [value]


_RECORD = msgspec.json.Decoder(list[Event] | Event)
#: What the fast path of :func:`parse_record` raises on a record it cannot vouch for: msgspec's rejections,
#: invalid UTF-8 in a string, nesting beyond msgspec's recursion limit, and the properties check's InvalidEvent
#: (also on properties orjson cannot encode: too deep, or integers beyond 64 bits, which orjson would have
#: decoded as floats on the per-event path).
_FAST_PATH_MISSES = (msgspec.DecodeError, UnicodeDecodeError, RecursionError, InvalidEvent)


def parse_record(
    payload: bytes | None, now: float, limits: EventLimits = DEFAULT_LIMITS
) -> tuple[list[Event], list[tuple[Any, InvalidEvent]]]:
    """A record's valid events, and its rejected ``(raw event, error)`` pairs (``raw`` is the payload if it is
    not JSON): the verdicts of :func:`decode_events` + :func:`parse_event`, at a fraction of their cost.

    msgspec decodes and validates the whole record in one call in C; Python then checks only what msgspec
    cannot. A record that fails any of it (or has an ISO 8601 ``ts``) takes the per-event path, so one bad
    event still rejects only itself, with parse_event's reason. Whatever the payload, it returns: a record
    without a value (a tombstone) is rejected as ``empty_record``, and a check that raises anything but
    InvalidEvent rejects its event as ``internal_error`` instead of stopping the worker.

    >>> good = b'{"event_id": "e1", "ts": 1700000000, "session_id": "s1", "type": "view", "item_id": "42"}'
    >>> events, rejects = parse_record(b"[" + good + b', {"type": "view"}]', now=1_700_000_000)
    >>> [event.item_id for event in events], [(raw, error.reason) for raw, error in rejects]
    (['42'], [({'type': 'view'}, 'missing_field')])
    >>> parse_record(None, now=1_700_000_000)[1][0][1].reason
    'empty_record'
    """
    if payload is None:
        return [], [(b"", InvalidEvent("empty_record", "the record has no value (a tombstone)"))]
    try:
        decoded = _RECORD.decode(payload)
        events = decoded if isinstance(decoded, list) else [decoded]
        if _python_checks_pass(events, now, limits):
            return events, []
    except _FAST_PATH_MISSES:
        pass
    try:
        raws = decode_events(payload)
    except InvalidEvent as error:
        return [], [(payload, error)]
    valid: list[Event] = []
    rejects: list[tuple[Any, InvalidEvent]] = []
    for raw in raws:
        try:
            valid.append(parse_event(raw, now, limits))
        except InvalidEvent as error:
            rejects.append((raw, error))
        except Exception as exc:  # a bug in a check must cost one event, not the worker
            rejects.append((raw, InvalidEvent("internal_error", f"{type(exc).__name__}: {str(exc)[:200]}")))
    return valid, rejects


def _python_checks_pass(events: list[Event], now: float, limits: EventLimits) -> bool:
    """parse_event's checks that msgspec cannot do while decoding; properties raise as in parse_event.
    A ``ts`` ahead of ``now`` within the skew is set to ``now``, as parse_event does."""
    ids: list[str] = []
    for event in events:
        if not _ts_in_range(event.ts, now, limits):
            return False
        if event.ts > now:
            event.ts = now
        if event.price is not None and not event.price <= limits.max_price:
            return False
        if event.quantity is not None and event.quantity > limits.max_quantity:
            return False
        if event.properties is not None:
            _check_properties(event.properties)
        ids += (event.event_id, event.session_id, event.item_id, event.user_id or "", event.category or "")
        if (ref := event.list_ref) is not None:
            if ref.surface not in SURFACES:
                return False
            ids += (ref.strategy, ref.request_id or "")
    return "".join(ids).isprintable()  # printable pieces make a printable whole, and only they do


MAX_DEAD_LETTER_RAW = 65_536
#: A dead letter's size at most: below Kafka's default ``max.message.bytes`` (1 MiB) with room for the
#: record's overhead, so publishing a dead letter can never fail for its size.
MAX_DEAD_LETTER_BYTES = 256 * 1024


def dead_letter(
    raw: Any, error: InvalidEvent, source: str, now: float, max_bytes: int = MAX_DEAD_LETTER_BYTES
) -> bytes:
    """A dead-letter record: the reason, where it was rejected, and the payload as received.

    A letter that would exceed ``max_bytes`` (a large payload whose JSON escapes multiply its size) becomes a
    ``size_violation`` letter: the original reason in ``original_reason``, ``raw`` cut to fit as text, and
    ``truncated`` and ``raw_bytes`` saying so, as Snowplow's size violations do. It never raises.

    >>> import orjson
    >>> rec = orjson.loads(dead_letter(b"{oops", InvalidEvent("invalid_json", "bad"), "collector", 1.0))
    >>> rec["reason"], rec["raw"], rec["source"]
    ('invalid_json', '{oops', 'collector')
    >>> big = orjson.loads(dead_letter({"x": "\\x00" * 100}, InvalidEvent("bad_id", "bad"), "worker", 1.0, 300))
    >>> big["reason"], big["original_reason"], big["truncated"], len(orjson.dumps(big)) <= 300
    ('size_violation', 'bad_id', True, True)
    """
    if isinstance(raw, bytes | bytearray):
        raw = bytes(raw[:MAX_DEAD_LETTER_RAW]).decode("utf-8", errors="replace")
    letter = {**error.as_dict(), "source": source, "rejected_at": now, "raw": raw}
    try:
        encoded = orjson.dumps(letter, default=repr)
    except (orjson.JSONEncodeError, RecursionError):  # too deep to encode as JSON: kept as text
        letter["raw"] = _as_text(raw)
        encoded = orjson.dumps(letter)
    if len(encoded) <= max_bytes:
        return encoded
    return _size_violation(letter, error, len(encoded), max_bytes)


def _as_text(raw: Any) -> str:
    try:
        return repr(raw)[:MAX_DEAD_LETTER_RAW]
    except RecursionError:  # deeper than Python's own limit: only what it was
        return f"<{type(raw).__name__} nested too deeply to show>"


def _size_violation(letter: dict[str, Any], error: InvalidEvent, size: int, max_bytes: int) -> bytes:
    """The letter cut to ``max_bytes``: raw as JSON text, halved until the escaped whole fits."""
    raw = letter["raw"]
    text = raw if isinstance(raw, str) else orjson.dumps(raw, default=repr).decode("utf-8", errors="replace")
    cut = {**letter, "reason": "size_violation", "original_reason": error.reason,
           "detail": f"dead letter of {size} bytes exceeds {max_bytes}; {error.detail}"[:400],
           "truncated": True, "raw_bytes": size}
    keep = min(len(text), max_bytes)
    while True:
        encoded = orjson.dumps({**cut, "raw": text[:keep]})
        if len(encoded) <= max_bytes or keep == 0:
            return encoded
        keep //= 2
