"""Off-policy evaluation on logged impressions: what a strategy would have earned on traffic it did not serve.

The log is the project's JSONL (``load_jsonl``): impressions and clicks with the ``list`` field the tracker
sends (docs/events.md), carts and purchases. Each impression of the surface that names its propensity is one
logged decision; its reward is whether the configured outcome (click, add-to-cart or purchase) was credited to
it by the same join the worker runs (:class:`~shopstream.models.attribution.Attribution`). The target policy is
a distribution over strategies (a single name: always that one); IPS and SNIPS re-weight the log by it.
Impressions are treated as independent trials, as the worker's bandit does; a session keeps its strategy, so
the intervals are somewhat narrower than the truth when sessions see many impressions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from shopstream.models.attribution import Attribution
from shopstream.models.events import Event
from shopstream.models.off_policy import LoggedRecord, off_policy_estimates


def parse_target(spec: str) -> dict[str, float]:
    """``vsknn`` or ``vsknn=0.5,transitions=0.5`` as a distribution over strategies.

    >>> parse_target("vsknn"), parse_target("a=1,b=3")
    ({'vsknn': 1.0}, {'a': 0.25, 'b': 0.75})
    """
    shares: dict[str, float] = {}
    for part in spec.split(","):
        name, _, share = part.strip().partition("=")
        shares[name] = float(share) if share else 1.0
    total = sum(shares.values())
    if not shares or total <= 0 or min(shares.values()) < 0:
        raise ValueError(f"target {spec!r}: name[=share],... with non-negative shares")
    return {name: share / total for name, share in shares.items()}


def logged_records(
    events: Iterable[Event], target: Mapping[str, float], surface: str = "session", reward: str = "click",
    window_s: float = 1800.0,
) -> tuple[list[LoggedRecord], dict[str, dict[str, float]]]:
    """The logged decisions with their rewards, and per logged strategy its impressions, rewards and mean."""
    join = Attribution(window_s=window_s, max_sessions=10**7, max_items=10**4)
    shown: dict[str, tuple[str, float]] = {}
    rewarded: set[str] = set()
    for event in events:
        for outcome in join.learn_one(event):
            if outcome.surface != surface or outcome.impression_id is None:
                continue
            if outcome.kind == "impression" and outcome.propensity is not None:
                shown[outcome.impression_id] = (outcome.strategy, outcome.propensity)
            elif outcome.kind == reward:
                rewarded.add(outcome.impression_id)
    records = []
    trials: Counter[str] = Counter()
    wins: Counter[str] = Counter()
    for impression_id, (strategy, propensity) in shown.items():
        won = impression_id in rewarded
        records.append(LoggedRecord(propensity, float(won), target.get(strategy, 0.0)))
        trials[strategy] += 1
        wins[strategy] += won
    logged = {s: {"impressions": trials[s], "rewards": wins[s], "mean": wins[s] / trials[s]} for s in sorted(trials)}
    return records, logged


def evaluate_logged(
    events: Iterable[Event], target: str, surface: str = "session", reward: str = "click", window_s: float = 1800.0,
) -> dict[str, Any]:
    """The IPS and SNIPS estimates of ``target``'s mean reward per impression, beside the logged means."""
    records, logged = logged_records(events, parse_target(target), surface, reward, window_s)
    estimates = off_policy_estimates(records)
    return {"target": target, "surface": surface, "reward": reward, "logged": logged,
            **{name: est.as_dict() for name, est in estimates.items()}}


def format_logged(result: dict[str, Any]) -> str:
    """A short text report of :func:`evaluate_logged`."""
    lines = [f"target {result['target']}: {result['reward']} per {result['surface']} impression"]
    for name in ("ips", "snips"):
        est = result[name]
        lines.append(f"  {name:<5} {est['value']:.4f}  95% CI [{est['low']:.4f}, {est['high']:.4f}]  "
                     f"n={est['n']}  effective n={est['effective_n']:.0f}")
    lines.append("  logged (on-policy) by strategy:")
    for strategy, row in result["logged"].items():
        lines.append(f"    {strategy:<12} {row['mean']:.4f}  ({row['rewards']:.0f} / {row['impressions']:.0f})")
    return "\n".join(lines)
