"""Event schema v1: what is accepted, and the reason code of everything that is not."""

from __future__ import annotations

import orjson
import pytest

from shopstream.models.events import (
    EVENT_TYPES,
    InvalidEvent,
    dead_letter,
    decode_events,
    encode_events,
    parse_event,
)

NOW = 1_764_000_000.0
GOOD = {"event_id": "e1", "ts": NOW - 5, "session_id": "s1", "type": "view", "item_id": "i1"}


def test_minimal_and_full_events_are_accepted() -> None:
    assert parse_event(GOOD, now=NOW).user_id is None
    full = {**GOOD, "user_id": "u1", "price": 9.5, "quantity": 2, "category": "toys",
            "properties": {"page": "pdp"}, "v": 1, "ts": "2025-11-24T16:00:00+00:00"}
    event = parse_event(full, now=NOW)
    assert (event.user_id, event.price, event.quantity, event.category) == ("u1", 9.5, 2, "toys")
    assert event.ts == 1_764_000_000.0
    assert parse_event(event.to_dict(), now=NOW) == event


@pytest.mark.parametrize("etype", EVENT_TYPES)
def test_every_type_is_accepted(etype: str) -> None:
    assert parse_event({**GOOD, "type": etype}, now=NOW).type == etype


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        ({"type": "teleport"}, "unknown_type", "type"),
        ({"session_id": None}, "missing_field", "session_id"),
        ({"event_id": None}, "missing_field", "event_id"),
        ({"item_id": 42}, "wrong_type", "item_id"),
        ({"user_id": ""}, "bad_id", "user_id"),
        ({"item_id": "x" * 129}, "bad_id", "item_id"),
        ({"item_id": "a\nb"}, "bad_id", "item_id"),
        ({"ts": 12}, "bad_timestamp", "ts"),
        ({"ts": NOW + 7200}, "bad_timestamp", "ts"),
        ({"ts": "2025-11-24T16:00:00"}, "bad_timestamp", "ts"),
        ({"ts": "yesterday"}, "bad_timestamp", "ts"),
        ({"ts": True}, "wrong_type", "ts"),
        ({"ts": float("nan")}, "bad_timestamp", "ts"),
        ({"price": "cheap"}, "wrong_type", "price"),
        ({"price": -1}, "bad_value", "price"),
        ({"quantity": 0}, "bad_value", "quantity"),
        ({"quantity": 1.5}, "wrong_type", "quantity"),
        ({"properties": [1]}, "bad_value", "properties"),
        ({"properties": {str(i): i for i in range(40)}}, "bad_value", "properties"),
        ({"properties": {"blob": "x" * 9000}}, "too_large", "properties"),
        ({"colour": "red"}, "unknown_field", "colour"),
        ({"v": 2}, "bad_version", "v"),
    ],
)
def test_rejections_carry_a_reason_and_field(change: dict, reason: str, field: str) -> None:
    raw = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw, now=NOW)
    assert (caught.value.reason, caught.value.field) == (reason, field)


def test_non_objects_and_bad_json() -> None:
    with pytest.raises(InvalidEvent, match="not_an_object"):
        parse_event([GOOD], now=NOW)
    with pytest.raises(InvalidEvent, match="invalid_json"):
        decode_events(b"[{")


def test_records_round_trip_and_dead_letters_keep_the_payload() -> None:
    assert decode_events(encode_events([GOOD, GOOD])) == [GOOD, GOOD]
    letter = orjson.loads(dead_letter({"x": 1}, InvalidEvent("unknown_field", "no", "x"), "worker", NOW))
    assert letter == {"reason": "unknown_field", "field": "x", "detail": "no", "source": "worker",
                      "rejected_at": NOW, "raw": {"x": 1}}
    huge = orjson.loads(dead_letter(b"\xff" * 100_000, InvalidEvent("invalid_json", "bad"), "collector", NOW))
    assert len(huge["raw"]) == 65_536
