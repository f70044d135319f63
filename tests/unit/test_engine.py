"""The served stack: predict-before-learn scoring, fallbacks, deduplication, caps, forecasts."""

from __future__ import annotations

import pickle

from shopstream.models.engine import DEFERRED_CHUNK, RecommenderStack, StackConfig
from shopstream.models.events import Event, parse_event
from shopstream.models.ownership import KeyOwner
from shopstream.models.transitions_index import IndexedTransitions
from shopstream.models.trending import Trending
from shopstream.producers.synthetic import SyntheticTraffic

T0 = 1_700_000_000.0


def ev(n: int, session: str, item: str, etype: str = "view", user: str | None = None, ts: float | None = None,
       category: str | None = None) -> tuple[Event, float]:
    return Event(f"e{n}", T0 + n if ts is None else ts, session, etype, item, user_id=user, category=category), 0.0


def lists(out, kind):  # type: ignore[no-untyped-def]
    return {r.id: r for r in out.lists if r.kind == kind}


def test_hits_are_scored_against_the_list_served_before_the_event() -> None:
    stack = RecommenderStack(StackConfig(top_k=5, session_model="transitions", hit_rate_sample=1.0))
    stack.process([ev(i, f"s{i}", item) for i, item in enumerate("ab")])  # trending: a, b
    stack.process([ev(2, "s9", "a")])  # s9 is served a list
    served = lists(stack.process([]), "session")
    assert served == {}  # nothing touched, nothing rewritten
    out = stack.process([ev(3, "s9", "b")])  # b was in s9's list (trending fallback) → a hit at rank ≤ 5
    deltas = {(d.model, d.k): d for d in out.scores}  # this batch's counts only
    assert deltas[("session:trending", 10)].predictions == 1
    assert deltas[("session:trending", 10)].hits == 1


def test_a_deferred_run_out_of_time_leaves_its_other_lists_to_the_next_run() -> None:
    """A burst of due lists is built over several runs, the ones left over first, none lost or built twice."""
    config = StackConfig(top_k=5, session_model="transitions")
    whole, budgeted = RecommenderStack(config), RecommenderStack(config)
    burst = [ev(i, f"s{i % 50}", f"i{i}", user=f"u{i % 7}", category=f"c{i % 3}") for i in range(2 * DEFERRED_CHUNK)]
    expected = {(rec.kind, rec.id): rec.items for rec in whole.process(burst).lists if rec.kind != "session"}
    budgeted.process_sessions(burst)
    first = budgeted.process_deferred(budget_s=0.0).lists
    assert len(first) == DEFERRED_CHUNK  # one chunk, however short the budget
    assert budgeted.deferred_backlog() == (0, 0.0)  # nothing to learn, lists waiting since origin 0.0
    late = ev(10_000, "s-late", "i0")
    budgeted.process_sessions([late])  # a new change joins the lists left over, behind them
    second = budgeted.process_deferred(budget_s=0.0).lists
    left_over = [key for key in expected if key not in {(rec.kind, rec.id) for rec in first}]
    assert [(rec.kind, rec.id) for rec in second] == left_over[:DEFERRED_CHUNK]  # first in, first built
    rest = second + budgeted.process_deferred().lists
    assert budgeted.deferred_backlog() == (0, float("inf"))
    again = {("item", "i0"), ("trending", "all")}  # the late event changed them after the first run built them
    built = [(rec.kind, rec.id) for rec in first + rest if (rec.kind, rec.id) not in again]
    assert len(built) == len(set(built)) and set(built) | again == set(expected)
    assert {(rec.kind, rec.id): rec.items for rec in first + rest if (rec.kind, rec.id) not in again} == {
        key: items for key, items in expected.items() if key not in again}


def test_lists_left_over_for_slots_dealt_away_are_not_built() -> None:
    stack = RecommenderStack(StackConfig(top_k=5, session_model="transitions"))
    stack.process_sessions([ev(i, f"s{i}", f"i{i}", user=f"u{i}") for i in range(2 * DEFERRED_CHUNK)])
    stack.process_deferred(budget_s=0.0)
    assert stack.deferred_backlog() == (0, 0.0)  # lists left over
    stack.owner = KeyOwner(1, frozenset())  # a rebalance dealt every slot to another worker
    assert stack.process_deferred().lists == [] and stack.deferred_backlog() == (0, float("inf"))


def test_session_lists_fall_back_to_trending_and_are_full_length() -> None:
    stack = RecommenderStack(StackConfig(top_k=4, session_model="transitions"))
    out = stack.process([ev(i, f"s{i}", item, category="c") for i, item in enumerate("abcdef")])
    session_list = lists(out, "session")["s0"]
    assert len(session_list.items) == 4
    assert session_list.scores == sorted(session_list.scores, reverse=True)
    assert set(lists(out, "trending")["all"].items) <= set("abcdef")
    assert set(lists(out, "category")["c"].items) <= set("abcdef")


def test_users_get_the_blend_once_known_and_duplicates_are_served_again_not_relearned() -> None:
    stack = RecommenderStack(StackConfig(top_k=3, session_model="transitions"))
    batch = [ev(i, "s1", item, "purchase", user="u1") for i, item in enumerate("xyx")]
    out = stack.process(batch)
    assert lists(out, "user")["u1"].model == "repeat_blend"
    assert lists(out, "user")["u1"].items[0] == "x"
    again = stack.process(batch)
    assert sum(again.duplicates.values()) == 3 and not again.learned
    # The lists of a redelivered event are written again (its first writer may have died before writing).
    assert ("session", "s1") in {(r.kind, r.id) for r in again.lists} and stack.learned == 3


def test_a_stack_writes_only_the_keys_its_owner_holds() -> None:
    events = [parse_event(e, now=2e9) for e in SyntheticTraffic(seed=5, start_ts=T0).take(3000)]
    whole = RecommenderStack(StackConfig(top_k=5))
    halves = [RecommenderStack(StackConfig(top_k=5)) for _ in range(2)]
    for slot, stack in enumerate(halves):
        stack.owner = KeyOwner(2, frozenset({slot}))
    written: list[dict[tuple[str, str], list[str]]] = [{}, {}, {}]
    for i in range(0, len(events), 300):
        step = [(e, 0.0) for e in events[i : i + 300]]
        for n, stack in enumerate((whole, *halves)):
            written[n].update({(r.kind, r.id): r.items for r in stack.process(step).lists})
    assert not set(written[1]) & set(written[2])  # each key has one writer
    together = {**written[1], **written[2]}
    assert set(together) == set(written[0])  # and together they write the keys one stack writes
    # with the same lists, but where the transitions' vote cache (exact_serving = False) was filled at
    # other moments because each stack serves fewer keys.
    same = sum(together[key] == items for key, items in written[0].items())
    assert same >= 0.97 * len(written[0]), (same, len(written[0]))


def test_memory_is_bounded_and_evictions_are_reported() -> None:
    config = StackConfig(max_sessions=50, max_users=30, max_items=40, dedupe_window=100,
                         session_model="transitions")
    stack = RecommenderStack(config)
    events = [parse_event(e, now=2e9) for e in SyntheticTraffic(seed=3, n_items=500, start_ts=T0).take(5000)]
    for i in range(0, len(events), 500):
        stack.process([(e, 0.0) for e in events[i : i + 500]])
    sizes, evictions = stack.size(), stack.evictions()
    assert sizes["sessions"] <= 50 and sizes["users"] <= 30 and sizes["items"] <= 40
    assert sizes["dedupe_ids"] <= 100 and sizes["served_lists"] <= 80
    assert evictions["sessions"] > 0 and evictions["items"] > 0 and evictions["users"] > 0


def test_forecasts_and_propensity_reach_the_output() -> None:
    stack = RecommenderStack(StackConfig(forecast_window_s=10, forecast_lateness_s=0, session_model="transitions"))
    batch = [ev(i, f"s{i}", "a", "purchase", ts=T0 + 10 * i, category="c") for i in range(10)]
    forecasts = {(r.kind, r.id): r.extra for r in stack.process(batch).lists if r.kind.startswith("forecast_")}
    assert forecasts[("forecast_shop", "all")]["window_s"] == 10
    assert len(forecasts[("forecast_item", "a")]["forecast"]) == 7
    errors = stack.forecaster.errors
    assert errors["item"].windows > 0 and errors["item"].actual > 0
    # Sessions that end without buying teach the propensity classifier; later sessions carry a score.
    browse = [ev(100 + i, f"b{i}", "z", ts=T0 + 5000 + 4000 * i) for i in range(5)]
    session_lists = [r for r in stack.process(browse).lists if r.kind == "session"]
    assert any(0.0 <= r.extra.get("purchase_propensity", -1) <= 1.0 for r in session_lists if r.extra)


def test_trending_decays_and_transitions_expire_sessions() -> None:
    trending = Trending(half_life_s=10.0, max_items=3)
    for i, item in enumerate(["a", "a", "b", "c", "d"]):
        trending.learn_one(ev(i, "s", item, ts=T0 + (0 if item == "a" else 100))[0])
    assert len(trending.top(10)) == 3 and "a" not in dict(trending.top(10))  # old "a" was the weakest
    transitions = IndexedTransitions(session_ttl_s=60.0)
    transitions.learn_one(ev(0, "old", "a")[0])
    transitions.learn_one(ev(1, "new", "b", ts=T0 + 1000)[0])
    assert transitions.recommend_session("old", 3) == [] and transitions.size()["sessions"] == 1
    assert pickle.loads(pickle.dumps(transitions)).size() == transitions.size()


def test_throttled_lists_are_released_by_flush_when_no_events_come() -> None:
    stack = RecommenderStack(StackConfig(session_model="transitions", trending_refresh_s=1.0))
    stack.process([ev(0, "s1", "a", ts=T0)])
    out = stack.process([ev(1, "s1", "b", ts=T0 + 0.1)])  # trending was written 0.1 s ago: held back
    assert "trending" not in {r.kind for r in out.lists}
    assert stack.flush(T0 + 0.5).lists == []
    released = {r.kind: r for r in stack.flush(T0 + 1.0).lists}
    assert released["trending"].items[0] in {"a", "b"} and released["trending"].origin == 0.0


def test_lists_waiting_for_their_refresh_are_not_written_once_their_slot_moved_away() -> None:
    """A rebalance may take a slot from a worker while some of its lists wait in the throttle or the deferred
    tier: the slot's new holder writes them, the old one must not write them any more."""
    stack = RecommenderStack(StackConfig(session_model="transitions", trending_refresh_s=1.0))
    stack.process([ev(0, "s1", "a", ts=T0, user="u1", category="c")])
    stack.process_sessions([ev(1, "s1", "b", ts=T0 + 0.1, user="u1", category="c")])  # waiting: throttle, deferred
    stack.owner = KeyOwner(2, frozenset())  # both slots dealt to other workers
    assert stack.flush(T0 + 10.0).lists == []


def test_a_released_trending_key_holds_every_change_it_waited_for() -> None:
    """The session tier tops lists up from a memo of trending; the deferred tier must not write that memo."""
    stack = RecommenderStack(StackConfig(session_model="transitions", trending_refresh_s=1.0))
    stack.process_sessions([ev(0, "s1", "a", ts=T0, category="c")])  # the session list memoises trending: [a]
    stack.process_sessions([ev(1, "s1", "b", ts=T0 + 0.4, category="c")])
    released = {r.kind: r.items for r in stack.process_deferred().lists}  # first release of both keys
    assert set(released["trending"]) == set(released["category"]) == {"a", "b"}
    assert stack.flush(T0 + 60.0).lists == []  # nothing was left held back


def test_a_closing_window_refreshes_the_shop_forecast_without_a_purchase() -> None:
    stack = RecommenderStack(StackConfig(forecast_window_s=10, forecast_lateness_s=0, session_model="transitions"))
    stack.process([ev(i, f"s{i}", "a", "purchase", ts=T0 + 10 * i) for i in range(8)])
    view = stack.process([ev(100, "late", "b", ts=T0 + 95)])  # closes the window of the last purchase
    assert ("forecast_shop", "all") in {(r.kind, r.id) for r in view.lists}


def test_the_deferred_tier_waits_and_then_learns_what_every_step_would_have() -> None:
    """Session lists first; the deferred tier's lists later. Its pending events are state (a checkpoint holds
    them, a restore learns them), and once learned the stack answers as one that ran both tiers every batch."""
    config = StackConfig(top_k=5, session_model="transitions")

    def batch(b: int) -> list[tuple[Event, float]]:
        return [ev(10 * b + i, f"s{b}-{i % 3}", "abcdef"[(b + i) % 6], "purchase" if i == 4 else "view",
                   user=f"u{i % 2}", category="c") for i in range(6)]

    every_step, tiered = RecommenderStack(config), RecommenderStack(config)
    for b in range(4):
        every_step.process(batch(b))
        assert {rec.kind for rec in tiered.process_sessions(batch(b)).lists} == {"session"}
    assert tiered.deferred_backlog()[0] == 24
    restored = pickle.loads(pickle.dumps(tiered))
    rest = {(rec.kind, rec.id): rec.items for rec in restored.process_deferred().lists}
    assert rest == {(rec.kind, rec.id): rec.items for rec in tiered.process_deferred().lists}
    assert {kind for kind, _ in rest} == {"user", "item", "trending", "category"}
    assert restored.deferred_backlog() == (0, float("inf")) and restored.learned == every_step.learned == 24
    after = [ev(100 + i, "late", item, user="u0", category="c") for i, item in enumerate("fa")]
    assert [(r.kind, r.id, r.items) for r in restored.process(after).lists] == [
        (r.kind, r.id, r.items) for r in every_step.process(after).lists]
