"""The strategy bandit: convergence with bounded regret, exact logged propensities, the floor, the A/B split."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from shopstream.models.bandit import Bandit

TRUTH = {"transitions": 0.04, "vsknn": 0.07, "trending": 0.02}  # hidden click-through rates
BEST = max(TRUTH.values())
ROUNDS = 20_000
FLOOR = 0.1
#: A uniform policy loses this much; the floor alone costs a tenth of it (53 clicks). The bound: a quarter
#: of uniform (133 clicks), i.e. the floor plus at most 80 clicks lost while learning.
UNIFORM_REGRET = ROUNDS * sum(BEST - p for p in TRUTH.values()) / len(TRUTH)
REGRET_BOUND = UNIFORM_REGRET / 4


def _simulate(policy: str, seed: int) -> tuple[Bandit, float]:
    bandit = Bandit(list(TRUTH), policy, floor=FLOOR, seed=seed)  # type: ignore[arg-type]
    clicks = random.Random(1000 + seed)
    regret = 0.0
    for n in range(ROUNDS):
        arm, _ = bandit.choose(f"s{n}")
        regret += BEST - TRUTH[arm]
        bandit.update(arm, float(clicks.random() < TRUTH[arm]))
    return bandit, regret


@pytest.mark.parametrize("policy", ["thompson", "ucb"])
@pytest.mark.parametrize("seed", [0, 1])
def test_allocation_converges_to_the_better_arm_with_bounded_regret(policy: str, seed: int) -> None:
    bandit, regret = _simulate(policy, seed)
    allocation = bandit.probabilities()
    assert max(allocation, key=allocation.__getitem__) == "vsknn"
    assert allocation["vsknn"] == pytest.approx(1 - FLOOR + FLOOR / 3)
    assert regret < REGRET_BOUND, (regret, REGRET_BOUND)


@pytest.mark.parametrize("policy", ["thompson", "ucb", "ab"])
def test_logged_propensities_are_the_probabilities_used(policy: str) -> None:
    bandit = Bandit(list(TRUTH), policy, floor=FLOOR, seed=3, refresh_every=10**9)  # type: ignore[arg-type]
    for arm, reward in (("vsknn", 1.0), ("trending", 0.0), ("transitions", 0.0)) * 50:
        bandit.update(arm, reward)
    bandit.refresh()
    used = bandit.probabilities()
    chosen: Counter[str] = Counter()
    n = 30_000
    for i in range(n):
        arm, propensity = bandit.choose(f"session-{i}")
        assert propensity == used[arm]
        chosen[arm] += 1
    for arm, p in used.items():  # the draws follow the logged distribution (4 standard errors)
        assert abs(chosen[arm] / n - p) < 4 * (p * (1 - p) / n) ** 0.5 + 1e-9, (arm, chosen[arm] / n, p)


def test_the_floor_keeps_every_arm_in_play() -> None:
    bandit, _ = _simulate("thompson", 0)
    assert min(bandit.probabilities().values()) >= FLOOR / len(TRUTH) - 1e-12
    assert min(p for p, _ in bandit.stats().values()) > 0


def test_ab_is_a_fixed_split_by_session() -> None:
    bandit = Bandit(["a", "b"], "ab", split=[3, 1])
    other = Bandit(["a", "b"], "ab", split=[3, 1], seed=99)
    for arm in ("a", "b") * 500:  # evidence does not move a fixed split
        bandit.update(arm, 1.0 if arm == "b" else 0.0)
    assert bandit.probabilities() == {"a": 0.75, "b": 0.25}
    choices = [bandit.choose(f"s{i}") for i in range(8000)]
    assert choices == [other.choose(f"s{i}") for i in range(8000)]  # the session's hash decides, not the seed
    assert Counter(arm for arm, _ in choices)["a"] / 8000 == pytest.approx(0.75, abs=0.02)
    assert {p for _, p in choices} == {0.75, 0.25}


def test_same_seed_same_choices_and_unknown_arms_are_ignored() -> None:
    runs = []
    for _ in range(2):
        bandit = Bandit(list(TRUTH), seed=7, refresh_every=5)
        picks = []
        for i in range(300):
            arm, p = bandit.choose(str(i))
            picks.append((arm, p))
            bandit.update(arm, float(i % 7 == 0))
            bandit.update("no-such-strategy", 1.0)
        runs.append(picks)
    assert runs[0] == runs[1]
    assert set(Bandit(["a"]).stats()) == {"a"}


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        Bandit(["a", "a"])
    with pytest.raises(ValueError):
        Bandit(["a"], floor=1.5)
    with pytest.raises(ValueError):
        Bandit(["a", "b"], "ab", split=[1])
