"""What another policy would have earned on logged traffic: inverse propensity scoring (IPS).

Each logged record says with which probability the logging policy showed what it showed (``propensity``),
what it earned (``reward``: a click, 0 or 1) and with which probability the target policy would have shown
the same (``target``). Re-weighting each reward by ``target / propensity`` gives an unbiased estimate of the
target's mean reward (IPS), as long as the logging policy gave every shown option a positive probability (the
bandit's floor guarantees it). The self-normalised estimate (SNIPS) divides by the sum of the weights instead
of the count: slightly biased, much less variable when weights are large. Intervals are normal approximations
(the delta method for SNIPS), so they need a few hundred records with rewards to mean anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist


@dataclass(frozen=True, slots=True)
class LoggedRecord:
    """One logged decision: the logging policy's probability, the reward, the target policy's probability."""

    propensity: float
    reward: float
    target: float


@dataclass(frozen=True, slots=True)
class Estimate:
    """A policy value with its confidence interval, and the records and effective sample size behind it."""

    value: float
    low: float
    high: float
    n: int
    effective_n: float  # (sum w)^2 / sum w^2: how many equally weighted records the estimate is worth

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n,
                "effective_n": self.effective_n}


def off_policy_estimates(records: Iterable[LoggedRecord], confidence: float = 0.95) -> dict[str, Estimate]:
    """IPS and SNIPS estimates of the target policy's mean reward per record.

    >>> logs = [LoggedRecord(0.5, 1.0, 1.0), LoggedRecord(0.5, 0.0, 1.0), LoggedRecord(0.5, 0.0, 0.0),
    ...         LoggedRecord(0.5, 1.0, 0.0)]
    >>> est = off_policy_estimates(logs)
    >>> est["ips"].value, est["snips"].value, est["snips"].effective_n
    (0.5, 0.5, 2.0)
    """
    weights: list[float] = []
    rewards: list[float] = []
    for record in records:
        if not 0.0 < record.propensity <= 1.0 or not 0.0 <= record.target <= 1.0:
            raise ValueError(f"propensity must be in (0, 1] and target in [0, 1]: {record}")
        weights.append(record.target / record.propensity)
        rewards.append(record.reward)
    n = len(weights)
    if n == 0:
        raise ValueError("no logged records")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    total_w = sum(weights)
    sum_sq_w = sum(w * w for w in weights)
    effective_n = total_w * total_w / sum_sq_w if sum_sq_w else 0.0
    terms = [w * r for w, r in zip(weights, rewards, strict=True)]
    ips = sum(terms) / n
    ips_sd = math.sqrt(sum((t - ips) ** 2 for t in terms) / max(n - 1, 1) / n)
    if total_w > 0:
        snips = sum(terms) / total_w
        snips_sd = math.sqrt(sum((w * (r - snips)) ** 2 for w, r in zip(weights, rewards, strict=True))) / total_w
    else:  # the target never agrees with the log: nothing to learn about it
        snips, snips_sd = math.nan, math.nan
    return {
        "ips": Estimate(ips, ips - z * ips_sd, ips + z * ips_sd, n, effective_n),
        "snips": Estimate(snips, snips - z * snips_sd, snips + z * snips_sd, n, effective_n),
    }
