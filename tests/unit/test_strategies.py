"""The strategy experiment through the engine: served session, user and item lists carry their strategy and
exact propensity, and each surface's bandit moves its traffic to the strategy whose lists earn the clicks."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest

from shopstream.config.settings import WorkerSettings, load
from shopstream.models.bounded import ExpiringDict
from shopstream.models.engine import RecommenderStack
from shopstream.models.events import parse_event
from shopstream.models.ownership import KeyOwner
from shopstream.models.stack_config import StackConfig
from shopstream.models.strategies import Surface
from shopstream.producers.synthetic import ClickModel, SyntheticTraffic

#: The click model's hidden quality per surface and strategy: a different strategy earns the clicks on each.
QUALITY = {
    "session": {"transitions": 0.06, "vsknn": 0.09, "trending": 0.04},
    "user": {"repeat_blend": 0.06, "session": 0.09, "trending": 0.03},
    "item": {"transitions": 0.05, "vsknn": 0.04, "trending": 0.09},
}
BEST = {"session": "vsknn", "user": "session", "item": "trending"}


def closed_loop(config: StackConfig, events: int, chunk: int = 500) -> tuple[RecommenderStack, list[dict[str, Any]]]:
    """Synthetic traffic through the engine; every list served is shown to the click model of its surface
    (a session list to its session, a user list to the user's latest session, an item list to the session
    that last viewed the item), whose impressions and clicks come back with the next chunk. Returns the stack
    and one record per chunk."""
    stack = RecommenderStack(config)
    traffic = iter(SyntheticTraffic(seed=1, start_ts=1.7e9, rate=200.0))
    clicks = {surface: ClickModel(quality, seed=2 + i, surface=surface) for i, (surface, quality) in
              enumerate(QUALITY.items())}
    feedback: list[dict[str, Any]] = []
    first_seen: dict[tuple[str, str], tuple[str, float]] = {}
    history = []
    for _ in range(events // chunk):
        raw = [next(traffic) for _ in range(chunk)]
        batch = [(parse_event(e, now=math.inf), 0.0) for e in feedback + raw]
        out = stack.process(batch)
        now = raw[-1]["ts"]
        allocation = stack.experiment.allocation()
        viewer = {e["item_id"]: e["session_id"] for e in raw if e["type"] == "view"}
        user_session = {e["user_id"]: e["session_id"] for e in raw if "user_id" in e}
        feedback = []
        for rec in out.lists:
            shown_to = {"session": rec.id, "user": user_session.get(rec.id), "item": viewer.get(rec.id)}.get(rec.kind)
            if shown_to is None:
                continue
            assert rec.extra is not None
            strategy, propensity = rec.extra["strategy"], rec.extra["propensity"]
            if rec.kind == "item" or (rec.kind, rec.id) not in first_seen:  # drawn now, from today's distribution
                first_seen[rec.kind, rec.id] = (strategy, propensity)
                assert propensity == allocation[rec.kind, strategy]
            assert (strategy, propensity) == first_seen[rec.kind, rec.id]  # sessions and users keep theirs
            user = rec.id if rec.kind == "user" else None
            feedback += clicks[rec.kind].respond(shown_to, {"items": rec.items, **rec.extra}, now, user)
        history.append({"allocation": allocation, "outcomes": out.outcomes})
    return stack, history


def test_each_surfaces_bandit_moves_its_traffic_to_the_strategy_that_earns_clicks() -> None:
    stack, history = closed_loop(StackConfig(experiment="thompson", experiment_floor=0.1), 10_000)
    final = history[-1]["allocation"]
    totals: Counter[tuple[str, str, str]] = Counter()
    for step in history:
        totals.update(step["outcomes"])
    for surface, quality in QUALITY.items():
        shares = {arm: final[surface, arm] for arm in quality}
        assert max(shares, key=shares.__getitem__) == BEST[surface], (surface, shares)
        assert shares[BEST[surface]] > 0.8, (surface, shares)
        assert min(shares.values()) >= 0.1 / 3 - 1e-9
        ctr = {arm: totals[surface, arm, "click"] / totals[surface, arm, "impression"] for arm in quality}
        assert max(ctr, key=ctr.__getitem__) == BEST[surface], (surface, ctr)
        assert all(totals[surface, arm, "add_to_cart"] > 0 for arm in quality), surface
        pulls = {arm: p for arm, (p, _) in stack.experiment.surfaces[surface].bandit.stats().items()}
        assert pulls == {arm: totals[surface, arm, "impression"] for arm in quality}


def test_ab_mode_splits_sessions_by_hash_and_does_not_learn() -> None:
    _, history = closed_loop(StackConfig(experiment="ab"), 3_000)
    assert history[-1]["allocation"] == pytest.approx(
        {(surface, arm): 1 / 3 for surface, quality in QUALITY.items() for arm in quality}
    )


def test_off_serves_each_surfaces_model_with_propensity_one() -> None:
    stack, history = closed_loop(StackConfig(experiment="off", session_model="transitions"), 2_000)
    assert history[-1]["allocation"] == {("session", "transitions"): 1.0, ("user", "repeat_blend"): 1.0,
                                         ("item", "transitions"): 1.0}
    assert set(stack.experiment.session_arms) == set(stack.experiment.item_arms) == {"transitions"}
    for surface, strategy in (("session", "transitions"), ("user", "repeat_blend"), ("item", "transitions")):
        assert history[-1]["outcomes"][surface, strategy, "impression"] > 0  # counted whatever the mode


def test_sessions_and_users_keep_their_strategy_when_their_keys_move_to_another_worker() -> None:
    """Two workers learn every event and each writes the keys of its slot; halfway they swap slots. A session's
    or user's strategy comes with it: the new writer learned it from the impressions every worker learns."""
    workers = [RecommenderStack(StackConfig(experiment="thompson")) for _ in range(2)]
    traffic = iter(SyntheticTraffic(seed=1, start_ts=1.7e9, rate=200.0))
    clicks = {surface: ClickModel(QUALITY[surface], seed=2, surface=surface) for surface in ("session", "user")}
    feedback: list[dict[str, Any]] = []
    first_seen: dict[tuple[str, str], tuple[str, float]] = {}
    served_before, served_after = set(), set()
    for step in range(8):
        for slot, stack in enumerate(workers):
            stack.owner = KeyOwner(2, frozenset({slot if step < 4 else 1 - slot}))
        raw = [next(traffic) for _ in range(500)]
        user_session = {e["user_id"]: e["session_id"] for e in raw if "user_id" in e}
        batch, feedback = feedback + raw, []
        for stack in workers:
            for rec in stack.process([(parse_event(e, now=math.inf), 0.0) for e in batch]).lists:
                shown_to = {"session": rec.id, "user": user_session.get(rec.id)}.get(rec.kind)
                if shown_to is None:
                    continue
                assert rec.extra is not None
                chosen = (rec.extra["strategy"], rec.extra["propensity"])
                assert first_seen.setdefault((rec.kind, rec.id), chosen) == chosen, rec.id
                (served_before if step < 4 else served_after).add((rec.kind, rec.id))
                user = rec.id if rec.kind == "user" else None
                feedback += clicks[rec.kind].respond(shown_to, {"items": rec.items, **rec.extra}, raw[-1]["ts"], user)
    moved = Counter(kind for kind, _ in served_before & served_after)  # keys written by both workers
    assert moved["session"] > 50 and moved["user"] > 20, moved


def test_a_list_whose_key_lost_its_assignment_leaves_every_later_assignment_as_it_was() -> None:
    """The cap evicted a session's assignment before its list was written: that list is drawn a strategy by a
    hash of the key, kept nowhere, so the sessions assigned afterwards get what they would have without it."""
    config = StackConfig(experiment="thompson")
    written, quiet = (Surface("session", ("a", "b", "c"), "a", config, ExpiringDict(2, 1800.0)) for _ in range(2))
    for surface in (written, quiet):
        for i in range(3):
            surface.assign(f"s{i}", float(i))  # s0's is evicted by the cap of 2
    drawn = written.choose("s0", 3.0)
    assert drawn == written.choose("s0", 3.0) and drawn[0] in ("a", "b", "c") and drawn[1] > 0
    assert written.assigned("s0", 3.0) == "a"  # nothing kept: the default
    later = [written.assign(f"t{i}", 4.0) for i in range(30)]
    assert later == [quiet.assign(f"t{i}", 4.0) for i in range(30)]
    assert len({strategy for strategy, _ in later}) == 3


def test_each_strategy_fills_its_list_from_its_own_model() -> None:
    """With the A/B split every arm of every surface is served; each list holds what its strategy says."""
    stack = RecommenderStack(StackConfig(experiment="ab"))
    raw = SyntheticTraffic(seed=4, start_ts=1.7e9, rate=200.0).take(6000)
    category = {e["item_id"]: e["category"] for e in raw}
    made: Counter[tuple[str, str, str]] = Counter()
    for i in range(0, len(raw), 500):
        for rec in stack.process([(parse_event(e, now=math.inf), 0.0) for e in raw[i : i + 500]]).lists:
            if rec.kind not in ("user", "item"):
                continue
            assert rec.extra is not None and rec.extra["propensity"] == pytest.approx(1 / 3)
            strategy = rec.extra["strategy"]
            made[rec.kind, strategy, rec.model] += 1
            if rec.kind == "item":
                assert rec.id not in rec.items
                if strategy == "trending":  # what trends in the item's own category
                    assert {category[item] for item in rec.items} == {category[rec.id]}
                else:
                    arm = {"transitions": stack.item_model, "vsknn": stack.experiment.item_arms["vsknn"]}[strategy]
                    assert rec.items == [item for item, _ in arm.similar_items(rec.id, stack.config.top_k)]
            elif strategy == "session":  # what the user's latest session is served, whichever model made it
                served = stack._served_sessions.peek(stack._last_session.peek(rec.id))
                assert served is not None and rec.items == served[1]
    assert stack.experiment.item_arms["vsknn"] is stack.experiment.session_arms["vsknn"]  # one V-SKNN serves both
    assert {(kind, strategy, model) for kind, strategy, model in made} >= {
        ("item", "transitions", "transitions"), ("item", "vsknn", "session_knn"), ("item", "trending", "trending"),
        ("user", "repeat_blend", "repeat_blend"), ("user", "session", "session_knn"), ("user", "trending", "trending"),
    }
    assert not {model for kind, strategy, model in made if kind == "user" and strategy == "trending"} - {"trending"}


def test_each_surfaces_arms_setting_accepts_only_its_own_strategies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPSTREAM_EXPERIMENT_USER_ARMS", "session, trending")
    monkeypatch.setenv("SHOPSTREAM_EXPERIMENT_ITEM_ARMS", "vsknn")
    config = load(WorkerSettings).stack_config()
    assert (config.arms("session"), config.arms("user"), config.arms("item")) == (
        ("transitions", "vsknn", "trending"), ("session", "trending"), ("vsknn",)
    )
    for name, value in (("USER_ARMS", "vsknn"), ("ITEM_ARMS", "session"), ("ITEM_ARMS", "trending,trending"),
                        ("ARMS", "repeat_blend"), ("USER_ARMS", " , ")):
        monkeypatch.setenv(f"SHOPSTREAM_EXPERIMENT_{name}", value)
        with pytest.raises(SystemExit, match=f"SHOPSTREAM_EXPERIMENT_{name}"):
            load(WorkerSettings)
        monkeypatch.delenv(f"SHOPSTREAM_EXPERIMENT_{name}")
