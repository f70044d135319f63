"""Event schema v1: what is accepted, and the reason code of everything that is not."""

from __future__ import annotations

import orjson
import pytest

from shopstream.models import events
from shopstream.models.events import (
    EVENT_TYPES,
    Event,
    InvalidEvent,
    dead_letter,
    decode_events,
    encode_events,
    parse_event,
    parse_record,
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
    deep: list = []
    for _ in range(300):
        deep = [deep]
    raw = {**GOOD, "properties": {"deep": deep}}
    with pytest.raises(InvalidEvent, match="cannot be encoded as JSON"):
        parse_event(raw, now=NOW)
    letter = orjson.loads(dead_letter(raw, InvalidEvent("bad_value", "deep", "properties"), "worker", NOW))
    assert letter["reason"] == "bad_value" and letter["raw"].startswith("{'event_id': 'e1'")


def test_a_record_nested_beyond_pythons_recursion_limit_is_dead_lettered() -> None:
    payload = b"[" * 1000 + b"]" * 1000  # JSON decoders take it; Python's repr of it would not
    events_, rejects = parse_record(payload, NOW)
    assert not events_ and [error.reason for _, error in rejects] == ["not_an_object"]
    letter = orjson.loads(dead_letter(rejects[0][0], rejects[0][1], "worker", NOW))
    assert letter["reason"] == "not_an_object" and letter["raw"] == "<list nested too deeply to show>"


# parse_record: the same verdicts as decode_events + parse_event, per event. The corpus is raw JSON text, so
# that it can hold what a Python dict cannot: numbers beyond float or 64 bits, duplicate keys, escapes, bad UTF-8.
EVENT = '"event_id": "e1", "ts": 1763999995, "session_id": "s1", "type": "view", "item_id": "i1"'
FULL = (f'{EVENT[:-1]}2", "user_id": "u1", "price": 9.5, "quantity": 2, "category": "toys", '
        '"properties": {"page": "pdp", "n": [1, 2.5, null, true, {"x": "y"}]}, "v": 1')


def props(n: int) -> str:
    return "{" + ", ".join(f'"k{i}": {i}' for i in range(n)) + "}"


LIST_FIELDS_VALID = [
    '"surface": "session", "strategy": "vsknn"',
    '"surface": "item", "strategy": "transitions", "position": 0, "request_id": "r1", "propensity": 1',
    '"surface": "user", "strategy": "x", "position": 1000, "propensity": 0.004, "request_id": null',
]
_V = '"surface": "session", "strategy": "v"'
LIST_FIELDS_INVALID = [
    '"strategy": "vsknn"', '"surface": "session"', '"surface": "basket", "strategy": "vsknn"',
    '"surface": "session", "strategy": ""', f'"surface": "session", "strategy": "{"s" * 65}"',
    '"surface": "session", "strategy": "a\\u0000"', '"surface": "session", "strategy": 5',
    *(f"{_V}, {extra}" for extra in (
        '"position": -1', '"position": 1001', '"position": 2.0', '"position": true', '"propensity": 0',
        '"propensity": 1.01', '"propensity": "1"', '"request_id": ""', '"request_id": "r\\n"', '"rank": 1',
    )),
]
FAST = [  # valid, and valid on the fast path
    EVENT, FULL, EVENT.replace("1763999995", "1763999995.125"), EVENT.replace("1763999995", "946684800"),
    EVENT.replace("1763999995", "1764000300"), EVENT.replace("1763999995", "1764000300.0"),  # now + skew: now
    *(EVENT.replace('"view"', f'"{etype}"') for etype in EVENT_TYPES),
    f'{EVENT}, "user_id": null, "price": null, "quantity": null, "category": null, "properties": null',
    f'{EVENT}, "price": 0', f'{EVENT}, "price": -0.0', f'{EVENT}, "price": 12', f'{EVENT}, "price": 1e6',
    f'{EVENT}, "price": 1000000', f'{EVENT}, "quantity": 1', f'{EVENT}, "quantity": 10000',
    '"v": 1, ' + EVENT, EVENT.replace('"e1"', '"' + "é" * 128 + '"'), EVENT.replace('"s1"', '"s 😀 \\u00e9"'),
    EVENT.replace('"event_id"', '"event\\u005fid"'), EVENT.replace('"e1"', '"e0", "event_id": "e1"'),
    f'{EVENT}, "properties": {props(32)}', f'{EVENT}, "properties": {{"a": 1, "a": 2, "b": "\\u0000"}}',
    f'{EVENT}, "properties": {{}}', f'{EVENT}, "properties": {{"deep": {"[" * 7}{"]" * 7}}}',
    *(f'{EVENT}, "list": {{{fields}}}' for fields in LIST_FIELDS_VALID), f'{EVENT}, "list": null',
]
SLOW_VALID = [  # valid, but only the per-event path can tell
    EVENT.replace("1763999995", '"2025-11-24T16:00:00+00:00"'), f'{EVENT}, "v": 1.0', f'{EVENT}, "v": true',
    EVENT.replace('"view"', '"teleport", "type": "view"'),
    f'{EVENT}, "properties": {{"big": 100000000000000000000000000000, "small": -9223372036854775809}}',
]
INVALID = [
    '"ts": 1763999995, "session_id": "s1", "type": "view", "item_id": "i1"', EVENT.replace('"s1"', "null"),
    EVENT.replace(', "type": "view"', ""), EVENT.replace('"view"', "null"), EVENT.replace("1763999995", "null"),
    EVENT.replace(', "ts": 1763999995', ""), EVENT.replace('"i1"', "42"), f'{EVENT}, "user_id": 5',
    EVENT.replace("1763999995", "true"), EVENT.replace("1763999995", "[1763999995]"),
    f'{EVENT}, "price": "cheap"', f'{EVENT}, "price": true', f'{EVENT}, "quantity": true',
    f'{EVENT}, "quantity": 1.5', f'{EVENT}, "quantity": 2.0', f'{EVENT}, "quantity": 100000000000000000000000000000',
    EVENT.replace('"i1"', '""'), EVENT.replace('"i1"', '"' + "x" * 129 + '"'), EVENT.replace('"i1"', '"a\\nb"'),
    EVENT.replace('"e1"', '"e\\u0000"'), EVENT.replace('"s1"', '"s\\u00a0"'), f'{EVENT}, "category": ""',
    f'{EVENT}, "user_id": "u\\t1"', EVENT.replace('"e1"', '"' + "é" * 129 + '"'),
    EVENT.replace("1763999995", "12"), EVENT.replace("1763999995", "1764000300.001"),
    EVENT.replace("1763999995", "946684799.999"), EVENT.replace("1763999995", "1e308"),
    EVENT.replace("1763999995", "100000000000000000000000000000"), EVENT.replace("1763999995", "-1763999995"),
    EVENT.replace("1763999995", '"2025-11-24T16:00:00"'), EVENT.replace("1763999995", '"yesterday"'),
    EVENT.replace("1763999995", '"2035-11-24T16:00:00+00:00"'),
    f'{EVENT}, "colour": "red"', f'{EVENT}, "V": 1', f'{EVENT}, "v": 2', f'{EVENT}, "v": "1"', f'{EVENT}, "v": null',
    f'{EVENT}, "v": 0', EVENT.replace('"view"', '"teleport"'), EVENT.replace('"view"', '"VIEW"'),
    EVENT.replace('"view"', "5"), EVENT.replace('"view"', "[]"), EVENT.replace('"view"', '"view", "type": "teleport"'),
    f'{EVENT}, "properties": {{"blob": "{"x" * 9000}"}}', f'{EVENT}, "properties": [1]', f'{EVENT}, "properties": "x"',
    f'{EVENT}, "properties": {props(33)}', f'{EVENT}, "price": -1', f'{EVENT}, "price": -1e-300',
    f'{EVENT}, "quantity": 0', f'{EVENT}, "quantity": -1', f'{EVENT}, "quantity": -0',
    f'{EVENT}, "price": 1e308', f'{EVENT}, "price": 1000000.01', f'{EVENT}, "price": 100000000000000000000000000000',
    f'{EVENT}, "quantity": 10001', f'{EVENT}, "quantity": 9223372036854775807',
    f'{EVENT}, "quantity": 9223372036854775808', f'{EVENT}, "quantity": 18446744073709551615',
    f'{EVENT}, "properties": {{"deep": {"[" * 8}{"]" * 8}}}',
    f'{EVENT}, "properties": {{"deep": {"[" * 200}{"]" * 200}}}',
    f'{EVENT}, "properties": {{"deep": {"[" * 300}{"]" * 300}}}',  # decodes, but orjson cannot encode it back
    *(f'{EVENT}, "list": {{{fields}}}' for fields in LIST_FIELDS_INVALID), f'{EVENT}, "list": "session"',
]
NOT_OBJECTS = ["5", '"e1"', "null", "true", f"[{{{EVENT}}}]", "[]"]
BAD_JSON = [
    b"[{", b"not json", b"", b"NaN", b"[1,]", b"\xef\xbb\xbf[]", f"[{{{EVENT}}}] x".encode(),
    f'{{{EVENT}, "price": 1e400}}'.encode(), f'{{{EVENT}, "price": 1{"0" * 400}}}'.encode(),
    f"{{{EVENT}}}".replace("i1", "i\xff").encode("latin-1"), f"{{{EVENT}}}".replace("i1", "\\ud800").encode(),
    f'{{{EVENT}, "properties": {{"deep": {"[" * 1100}{"]" * 1100}}}}}'.encode(),
]


def per_event(payload: bytes) -> tuple[list[Event], list[tuple[object, InvalidEvent]]]:
    """The reference: decode_events + parse_event per event, as the worker did before parse_record."""
    try:
        raws = decode_events(payload)
    except InvalidEvent as error:
        return [], [(payload, error)]
    valid, rejects = [], []
    for raw in raws:
        try:
            valid.append(parse_event(raw, now=NOW))
        except InvalidEvent as error:
            rejects.append((raw, error))
    return valid, rejects


def verdicts(result: tuple[list[Event], list[tuple[object, InvalidEvent]]]) -> tuple[list[str], list[tuple]]:
    """reprs, so that an int where a float is due (or -0.0 for 0.0) counts as a difference."""
    valid, rejects = result
    return [repr(event) for event in valid], [(repr(raw), error.as_dict()) for raw, error in rejects]


def corpus() -> list[bytes]:
    good, bad = [f"{{{fields}}}" for fields in FAST + SLOW_VALID], [f"{{{fields}}}" for fields in INVALID]
    return [
        *(o.encode() for o in good + bad),
        *(f"[{o}]".encode() for o in good + bad),
        f"[{', '.join(good)}]".encode(),
        *(f"[{good[0]}, {wrong}, {good[1]}]".encode() for wrong in bad + NOT_OBJECTS),
        f"[{', '.join(good + bad + NOT_OBJECTS)}]".encode(),
        *(n.encode() for n in NOT_OBJECTS),
        *BAD_JSON,
    ]


@pytest.mark.parametrize("payload", corpus())
def test_parse_record_gives_the_per_event_verdicts(payload: bytes) -> None:
    assert verdicts(parse_record(payload, NOW)) == verdicts(per_event(payload))


def test_the_corpus_has_what_it_claims() -> None:
    assert all(per_event(f"{{{fields}}}".encode())[0] for fields in FAST + SLOW_VALID)
    assert not any(per_event(f"{{{fields}}}".encode())[0] for fields in INVALID)
    reasons = {error.reason for payload in corpus() for _, error in per_event(payload)[1]}
    assert reasons == {"missing_field", "wrong_type", "bad_id", "bad_timestamp", "unknown_field", "bad_version",
                       "unknown_type", "too_large", "bad_value", "not_an_object", "invalid_json"}


@pytest.mark.parametrize("fields", FAST)
def test_valid_records_take_the_fast_path(fields: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(*_: object) -> None:
        raise AssertionError("took the per-event path")

    monkeypatch.setattr(events, "decode_events", slow)
    monkeypatch.setattr(events, "parse_event", slow)
    valid, rejects = parse_record(f"[{{{fields}}}, {{{EVENT}}}]".encode(), NOW)
    assert (len(valid), rejects) == (2, [])
    assert parse_record(f"{{{fields}}}".encode(), NOW) == (valid[:1], [])


# Records no producer of ours writes, but anyone with access to the topic can: none of them may stop the worker.
HOSTILE_RECORDS = {
    "tombstone": None,
    "empty": b"",
    "binary": bytes(range(256)) * 8,
    "garbage_2mb": b"\xfe\x00{[" * 524_288,
    "json_2mb_of_escapes": orjson.dumps({"x": "\x00" * 2_000_000}),
    "array_2mb_of_rejects": orjson.dumps([{"type": "teleport", "pad": "x" * 100}] * 15_000),
}


@pytest.mark.parametrize("payload", HOSTILE_RECORDS.values(), ids=HOSTILE_RECORDS.keys())
def test_hostile_records_are_dead_lettered_within_the_dlq_size(payload: bytes | None) -> None:
    valid, rejects = parse_record(payload, NOW)
    assert not valid and rejects
    for raw, error in rejects:
        letter = dead_letter(raw, error, "worker", NOW)
        assert len(letter) <= events.MAX_DEAD_LETTER_BYTES
        assert orjson.loads(letter)["reason"] in {error.reason, "size_violation"}


def test_a_dead_letter_over_the_limit_is_cut_and_says_so() -> None:
    raw = {"event_id": "e\x00" * 400_000}  # each \x00 escapes to six bytes
    letter = orjson.loads(dead_letter(raw, InvalidEvent("bad_id", "bad", "event_id"), "collector", NOW))
    assert (letter["reason"], letter["original_reason"], letter["field"], letter["truncated"]) == (
        "size_violation", "bad_id", "event_id", True)
    assert letter["raw_bytes"] > events.MAX_DEAD_LETTER_BYTES and letter["raw"].startswith('{"event_id":"e\\u0000')
    small = orjson.loads(dead_letter({"a": 1}, InvalidEvent("bad_id", "bad"), "collector", NOW))
    assert "truncated" not in small


def test_a_tombstone_is_an_empty_record() -> None:
    assert [(raw, error.reason) for raw, error in parse_record(None, NOW)[1]] == [(b"", "empty_record")]


def test_a_check_that_raises_costs_one_event_not_the_record(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(raw: dict, now: float, limits: events.EventLimits) -> Event:
        if raw.get("event_id") == "boom":
            raise ZeroDivisionError("a bug")
        return parse_event(raw, now, limits)

    monkeypatch.setattr(events, "parse_event", broken)
    payload = orjson.dumps([{**GOOD, "event_id": "boom", "ts": "2025-11-24T16:00:00+00:00"}, GOOD])
    valid, rejects = parse_record(payload, NOW)
    assert [e.event_id for e in valid] == ["e1"]
    assert [(error.reason, error.detail) for _, error in rejects] == [("internal_error", "ZeroDivisionError: a bug")]


def test_time_ahead_within_the_skew_is_set_to_now_and_beyond_it_rejected() -> None:
    limits = events.EventLimits(max_future_skew_s=60)
    assert parse_event({**GOOD, "ts": NOW + 59}, NOW, limits).ts == NOW
    assert parse_record(orjson.dumps({**GOOD, "ts": NOW + 59}), NOW, limits)[0][0].ts == NOW
    with pytest.raises(InvalidEvent, match="now \\+ 60 s"):
        parse_event({**GOOD, "ts": NOW + 61}, NOW, limits)
    assert parse_event({**GOOD, "ts": NOW + 3000}, NOW, events.EventLimits(max_future_skew_s=3600)).ts == NOW


@pytest.mark.parametrize(("field", "value"), [("price", 1e308), ("price", 2.0), ("quantity", 2**64 - 1),
                                              ("quantity", 4)])
def test_prices_and_quantities_have_configurable_bounds(field: str, value: float) -> None:
    limits = events.EventLimits(max_price=1.5, max_quantity=3)
    with pytest.raises(InvalidEvent) as caught:
        parse_event({**GOOD, field: value}, NOW, limits)
    assert (caught.value.reason, caught.value.field) == ("bad_value", field)
    [(_, error)] = parse_record(orjson.dumps({**GOOD, field: value}), NOW, limits)[1]
    assert error.reason == "bad_value"


def test_the_list_field_round_trips_under_its_wire_name() -> None:
    raw = {**GOOD, "type": "impression",
           "list": {"surface": "session", "strategy": "vsknn", "position": 3, "request_id": "r1", "propensity": 0.25}}
    event = parse_event(raw, now=NOW)
    assert event.list_ref is not None and (event.list_ref.strategy, event.list_ref.propensity) == ("vsknn", 0.25)
    assert event.to_dict()["list"] == raw["list"]
    assert parse_record(orjson.dumps([raw]), NOW)[0] == [event]
    with pytest.raises(InvalidEvent) as rejected:
        parse_event({**raw, "list": {**raw["list"], "surface": "cart"}}, now=NOW)
    assert (rejected.value.reason, rejected.value.field) == ("bad_value", "list")
