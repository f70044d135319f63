"""The contract every model of the served stack keeps, checked the moment a model joins the stack (River's
``check_estimator`` habit): learning a batch equals learning its events one by one, serving is read-only,
caps hold on a long stream, and seeded runs repeat exactly."""

from __future__ import annotations

import itertools
from typing import Any, get_args

import pytest

from shopstream.models.base import GlobalRecommender, ItemRecommender, Model, SessionRecommender, UserRecommender
from shopstream.models.engine import RecommenderStack
from shopstream.models.events import Event, parse_event
from shopstream.models.forecast import WindowedForecaster
from shopstream.models.propensity import SessionPropensity
from shopstream.models.session_blend import SessionBlend
from shopstream.models.session_index import IndexedSessionKNN
from shopstream.models.session_knn import SessionKNN
from shopstream.models.stack_config import SessionModelName, StackConfig
from shopstream.producers.synthetic import SyntheticTraffic

CAP = 64


def stream(n: int, seed: int = 7) -> list[Event]:
    traffic = SyntheticTraffic(seed=seed, start_ts=1.7e9, rate=50.0)
    return [parse_event(raw, now=1.7e9 + n) for raw in itertools.islice(iter(traffic), n)]


def stack_models(session_model: str, cap: int = 200_000) -> list[Model]:
    config = StackConfig(session_model=session_model, max_items=cap, max_sessions=cap, max_users=cap,  # type: ignore[arg-type]
                         forecast_window_s=60.0)
    return RecommenderStack(config).models


def model_ids() -> list[tuple[str, int]]:
    """(session model option, index of the model in that stack): every model the stack can serve."""
    return [(name, i) for name in get_args(SessionModelName) for i in range(len(stack_models(name)))]


def serve(model: Model, events: list[Event]) -> list[Any]:
    """What the model answers for the entities of ``events``, through whichever interfaces it serves."""
    sessions = sorted({e.session_id for e in events})[:40]
    items = sorted({e.item_id for e in events})[:40]
    users = sorted({e.user_id for e in events if e.user_id})[:40]
    categories = sorted({e.category for e in events if e.category})[:10]
    out: list[Any] = []
    if isinstance(model, SessionRecommender):
        out += [model.recommend_session(s, 10) for s in sessions]
    if isinstance(model, ItemRecommender):
        out += [model.similar_items(i, 10) for i in items]
    if isinstance(model, UserRecommender):
        out += model.recommend_users(users, 10)
    if isinstance(model, GlobalRecommender):
        out += [model.top(10, c) for c in [None, *categories]]
    if isinstance(model, SessionPropensity):
        out += [model.predict_session(s) for s in sessions]
    if isinstance(model, WindowedForecaster):
        out += [model.forecast(("shop", None), 3)] + [model.forecast(("item", i), 3) for i in items]
    assert out, f"{type(model).__name__} serves through no interface the contract knows"
    return out


def rounded(answers: list[Any]) -> list[Any]:
    """Scores to 9 digits: a vectorised batch step may add in another order than one event at a time."""
    def fix(value: Any) -> Any:
        if isinstance(value, float):
            return round(value, 9)
        if isinstance(value, list | tuple):
            return type(value)(fix(v) for v in value)
        return value
    return fix(answers)


@pytest.mark.parametrize(("session_model", "index"), model_ids())
def test_learn_many_equals_learn_one_in_order(session_model: str, index: int) -> None:
    events = stream(3000)
    batched, single = stack_models(session_model)[index], stack_models(session_model)[index]
    for start in range(0, len(events), 500):
        batched.learn_many(events[start : start + 500])
    for event in events:
        single.learn_one(event)
    assert rounded(serve(batched, events)) == rounded(serve(single, events))


@pytest.mark.parametrize(("session_model", "index"), model_ids())
def test_serving_is_read_only(session_model: str, index: int) -> None:
    events = stream(3000)
    served, untouched = stack_models(session_model)[index], stack_models(session_model)[index]
    for model in (served, untouched):
        model.learn_many(events[:2000])
    before = served.size()
    first = serve(served, events)
    assert serve(served, events) == first and served.size() == before
    if served.exact_serving:
        for model in (served, untouched):
            model.learn_many(events[2000:])
        assert serve(served, events) == serve(untouched, events)


def item_bound(model: Model) -> int:
    """A session-kNN's item index holds the items of the sessions it holds; a blend's, its components'."""
    if isinstance(model, SessionKNN | IndexedSessionKNN):
        return CAP * model.window
    if isinstance(model, SessionBlend):
        return max(item_bound(component) for component in model.components)
    return CAP


@pytest.mark.parametrize(("session_model", "index"), model_ids())
def test_caps_hold_on_a_long_stream(session_model: str, index: int) -> None:
    model = stack_models(session_model, cap=CAP)[index]
    model.learn_many(stream(6000))
    sizes = model.size()
    bounds = {kind: CAP for kind in sizes}
    bounds["items"] = item_bound(model)
    assert sizes and all(n <= bounds[kind] for kind, n in sizes.items()), sizes
    assert sum(model.evictions().values()) > 0  # the stream is longer than the caps: something was dropped


@pytest.mark.parametrize(("session_model", "index"), model_ids())
def test_seeded_runs_repeat_exactly(session_model: str, index: int) -> None:
    events = stream(2000)
    first, second = stack_models(session_model)[index], stack_models(session_model)[index]
    first.learn_many(events)
    second.learn_many(events)
    assert serve(first, events) == serve(second, events)
