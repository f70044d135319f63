"""SessionKNN against the plain reading of the session-rec definitions, click by click on a small random log.

After every learned click the streaming model's scores for that session must equal the reference
computed from scratch over every click so far (the model's caps set wide enough not to bind, except
``sample_size`` and ``k``, which must select the same candidates and neighbours as the reference).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from shopstream.models.events import Event
from shopstream.models.session_knn import SessionKNN
from tests.unit.session_knn_reference import reference_scores, sessions_of

T0 = 1_700_000_000.0

SETTINGS: dict[str, dict[str, Any]] = {
    "vsknn": {"k": 6, "sample_size": 12, "similarity": "vec", "weighting": "div", "weighting_score": "div"},
    "vsknn-quadratic-idf": {"k": 4, "sample_size": 9, "similarity": "cosine", "weighting": "quadratic",
                            "weighting_score": "quadratic", "idf_weighting": 2.0, "remind": False},
    "vstan": {"k": 5, "sample_size": 15, "similarity": "cosine", "lambda_spw": 2.0, "lambda_snh": 3.0,
              "lambda_inh": 1.5, "lambda_ipw": 2.0, "idf_weighting": 1.0},
    "vstan-shipped": {"k": 8, "sample_size": 20, "similarity": "cosine", "lambda_spw": 4.0, "lambda_snh": 5.0,
                      "lambda_inh": 4.0, "lambda_ipw": 1e-5, "idf_weighting": 1.0},
}


def random_log(seed: int, sessions: int = 120, items: int = 30) -> list[tuple[str, str, float]]:
    """Interleaved sessions over skewed items, with repeats, a clock that often stands still (coarse
    stamps) and gaps of days between bursts."""
    rng = random.Random(seed)
    catalogue = [f"i{n}" for n in range(items)]
    popularity = [1.0 / (n + 1) for n in range(items)]
    open_sessions: dict[str, int] = {}
    log, ts, started = [], T0, 0
    while started < sessions or open_sessions:
        if started < sessions and (not open_sessions or rng.random() < 0.3):
            open_sessions[f"s{started}"] = rng.randint(1, 9)
            started += 1
        sid = rng.choice(list(open_sessions))
        last = [item for s, item, _ in log if s == sid][-1:]
        item = last[0] if last and rng.random() < 0.2 else rng.choices(catalogue, popularity)[0]
        ts += rng.choice([0.0, 0.0, 30.0, 600.0, 3 * 86_400.0]) if rng.random() < 0.95 else 20 * 86_400.0
        log.append((sid, item, ts))
        open_sessions[sid] -= 1
        if not open_sessions[sid]:
            del open_sessions[sid]
    return log


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("seed", [1, 2])
def test_streaming_scores_equal_the_reference_after_every_click(setting: str, seed: int) -> None:
    params = SETTINGS[setting]
    model = SessionKNN(**params, window=50, max_sessions=10_000)
    log = random_log(seed)
    compared = 0
    for n, (sid, item, ts) in enumerate(log):
        model.learn_one(Event(f"e{n}", ts, sid, "view", item))
        known = sessions_of(log[: n + 1])
        current = known[sid]
        expected = reference_scores(known, current.items, current.ts, params, exclude=sid)
        served = dict(model.recommend_session(sid, 1_000))
        positive = {item: score for item, score in served.items() if score > 0}
        assert positive.keys() == {item for item, score in expected.items() if score > 0}, (n, sid)
        for item, score in positive.items():
            assert score == pytest.approx(expected[item], rel=1e-9), (n, sid, item)
        compared += bool(positive)
    assert compared > len(log) // 2  # most clicks had neighbours to compare


def test_the_log_makes_both_caps_bind() -> None:
    """The comparison would prove little if every candidate were sampled and every neighbour voted."""
    log = random_log(1)
    params = SETTINGS["vsknn"]
    sampled_out = cut = 0
    for n, (sid, _, _) in enumerate(log):
        known = sessions_of(log[: n + 1])
        mine = set(known[sid].items)
        candidates = sum(1 for other, s in known.items() if other != sid and mine & set(s.items))
        sampled_out += candidates > params["sample_size"]
        cut += candidates > params["k"]
    assert sampled_out > 50 and cut > 100
