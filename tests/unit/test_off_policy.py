"""IPS and SNIPS recover a target strategy's click-through rate from another policy's logs."""

from __future__ import annotations

import numpy as np
import pytest

from shopstream.models.off_policy import LoggedRecord, off_policy_estimates

CTR = np.array([0.04, 0.07, 0.02])  # the strategies' true click-through rates
LOGGING = np.array([0.6, 0.1, 0.3])  # how the logging policy split traffic (the target gets only 10 %)


def _logs(seed: int, n: int, target: np.ndarray) -> list[LoggedRecord]:
    rng = np.random.default_rng(seed)
    arms = rng.choice(len(CTR), size=n, p=LOGGING)
    clicks = rng.random(n) < CTR[arms]
    return [LoggedRecord(float(LOGGING[a]), float(c), float(target[a])) for a, c in zip(arms, clicks, strict=True)]


@pytest.mark.parametrize("target", [np.array([0.0, 1.0, 0.0]), np.array([0.2, 0.5, 0.3])])
def test_ips_recovers_the_target_ctr_within_its_interval(target: np.ndarray) -> None:
    truth = float(target @ CTR)
    estimates = off_policy_estimates(_logs(0, 50_000, target))
    for name in ("ips", "snips"):
        est = estimates[name]
        assert est.low <= truth <= est.high, (name, est, truth)
        assert est.high - est.low < 0.02  # and the interval is narrow enough to tell 0.07 from 0.04


def test_the_interval_covers_the_truth_about_as_often_as_it_says() -> None:
    target = np.array([0.0, 1.0, 0.0])
    truth = float(target @ CTR)
    covered = {"ips": 0, "snips": 0}
    for seed in range(200):
        for name, est in off_policy_estimates(_logs(seed, 5_000, target)).items():
            covered[name] += est.low <= truth <= est.high
    assert covered["ips"] >= 180 and covered["snips"] >= 180, covered  # 95 % nominal; 90 % is 4 sd below


def test_a_target_equal_to_the_logging_policy_is_the_plain_mean() -> None:
    logs = _logs(1, 2_000, LOGGING)
    est = off_policy_estimates(
        [LoggedRecord(r.propensity, r.reward, r.propensity) for r in logs]
    )
    assert est["ips"].value == pytest.approx(np.mean([r.reward for r in logs]))
    assert est["snips"].effective_n == pytest.approx(len(logs))


def test_bad_records_are_refused() -> None:
    with pytest.raises(ValueError):
        off_policy_estimates([LoggedRecord(0.0, 1.0, 1.0)])
    with pytest.raises(ValueError):
        off_policy_estimates([])
