"""Attribution: outcomes credited to the list that showed the item, in the same session, within the window."""

from __future__ import annotations

from shopstream.models.attribution import Attribution
from shopstream.models.events import Event, ListRef

SESSION_LIST = ListRef("session", "vsknn", position=2, request_id="r1", propensity=0.5)
ITEM_LIST = ListRef("item", "transitions", position=0, propensity=1.0)


def _kinds(join: Attribution, *events: Event) -> list[tuple[str, str, str]]:
    return [(o.kind, o.surface, o.strategy) for event in events for o in join.learn_one(event)]


def test_the_funnel_is_credited_once_per_kind_and_showing() -> None:
    join = Attribution(window_s=600)
    got = _kinds(
        join,
        Event("e1", 100.0, "s1", "impression", "i1", list_ref=SESSION_LIST),
        Event("e2", 110.0, "s1", "view", "i1", list_ref=SESSION_LIST),
        Event("e3", 111.0, "s1", "view", "i1", list_ref=SESSION_LIST),  # a second click of the same showing
        Event("e4", 120.0, "s1", "add_to_cart", "i1"),
        Event("e5", 121.0, "s1", "add_to_cart", "i1"),
        Event("e6", 130.0, "s1", "purchase", "i1"),
    )
    assert got == [("impression", "session", "vsknn"), ("click", "session", "vsknn"),
                   ("add_to_cart", "session", "vsknn"), ("purchase", "session", "vsknn")]


def test_other_sessions_items_and_late_outcomes_get_nothing() -> None:
    join = Attribution(window_s=600)
    join.learn_one(Event("e1", 100.0, "s1", "impression", "i1", list_ref=SESSION_LIST))
    assert _kinds(join, Event("e2", 110.0, "s2", "add_to_cart", "i1")) == []  # another session
    assert _kinds(join, Event("e3", 110.0, "s1", "add_to_cart", "i2")) == []  # another item
    assert _kinds(join, Event("e4", 110.0, "s1", "view", "i1")) == []  # a view not from a list is no click
    assert _kinds(join, Event("e5", 50.0, "s1", "purchase", "i1")) == []  # before the showing
    assert _kinds(join, Event("e6", 701.0, "s1", "purchase", "i1")) == []  # after the window


def test_the_latest_showing_wins_and_a_click_without_impression_counts() -> None:
    join = Attribution(window_s=600)
    join.learn_one(Event("e1", 100.0, "s1", "impression", "i1", list_ref=SESSION_LIST))
    join.learn_one(Event("e2", 105.0, "s1", "impression", "i1", list_ref=ITEM_LIST))
    assert _kinds(join, Event("e3", 110.0, "s1", "purchase", "i1")) == [("purchase", "item", "transitions")]
    click = join.learn_one(Event("e4", 120.0, "s1", "view", "i9", list_ref=SESSION_LIST))
    assert [(o.kind, o.impression_id, o.propensity) for o in click] == [("click", None, 0.5)]
    assert _kinds(join, Event("e5", 130.0, "s1", "add_to_cart", "i9")) == [("add_to_cart", "session", "vsknn")]


def test_state_is_bounded_and_expires_in_event_time() -> None:
    join = Attribution(window_s=60, max_sessions=10, max_items=5)
    for i in range(100):
        for j in range(20):
            join.learn_one(Event(f"e{i}-{j}", 1000.0 + i, f"s{i}", "impression", f"i{j}", list_ref=SESSION_LIST))
    assert join.size()["attribution_sessions"] == 10
    assert join.evictions()["attribution_sessions"] == 90
    assert _kinds(join, Event("x", 1099.0, "s99", "add_to_cart", "i0")) == []  # beyond the 5 items kept
    assert _kinds(join, Event("y", 1099.0, "s99", "add_to_cart", "i19")) == [("add_to_cart", "session", "vsknn")]
    join.learn_one(Event("z", 5000.0, "s-late", "view", "i1"))
    assert join.size()["attribution_sessions"] == 0
