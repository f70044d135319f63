"""Strategies as arms: which session model fills each session's list, chosen per session by a bandit.

With ``StackConfig.experiment`` off, every session is served the configured session model with propensity 1;
otherwise each new session is assigned one of ``experiment_arms`` by the bandit (Thompson sampling, UCB or a
fixed A/B split, :mod:`shopstream.models.bandit`) when its first event is learned, as the bandit stands after
every earlier event (so the assignments depend on the event stream, not on how it was batched), and keeps it
for its lifetime (also when its key moves to
another worker, which reads the strategy back from the session's impressions), so a shopper sees one
strategy's lists and its clicks say something about that strategy. The bandit learns from the attributed
outcomes of session lists (:mod:`shopstream.models.attribution`): each impression is a trial, each
``experiment_reward`` (click, add-to-cart or purchase) a success.

Whatever the mode, outcomes are counted per surface and strategy for the metrics, for the strategy names in a
fixed set (the arms and the stack's model names), so a client cannot grow the metric labels.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from shopstream.models.attribution import Attribution
from shopstream.models.bandit import Bandit
from shopstream.models.base import Scored, SessionRecommender
from shopstream.models.bounded import ExpiringDict
from shopstream.models.events import Event
from shopstream.models.stack_config import StackConfig

#: Outcome counts of a batch, by ``(surface, strategy, kind)``.
OutcomeCounts = Counter[tuple[str, str, str]]


class TrendingArm(SessionRecommender):
    """The trending strategy: no session-specific items, so the engine's fill (the category's trending items,
    then the shop's) makes the whole list."""

    name = "trending"

    def learn_one(self, event: Event) -> None:
        """Trending learns in the engine's own trending model."""

    def recommend_session(self, session_id: str, k: int) -> list[Scored]:
        return []


class SessionExperiment:
    """Per-session choice of the session list's strategy, and the counting of its outcomes.

    Examples
    --------
    >>> arms = {"trending": TrendingArm()}
    >>> off = SessionExperiment(StackConfig(experiment="off", session_model="transitions"), arms, "trending")
    >>> off.choose("s1", 0.0)
    ('trending', 1.0)
    """

    def __init__(
        self, config: StackConfig, arms: Mapping[str, SessionRecommender], default: str,
        labels: Iterable[str] = (),
    ) -> None:
        self.config = config
        self.arms = dict(arms)
        self.default = default
        self.on = config.experiment != "off"
        self.bandit = Bandit(
            list(self.arms), "thompson" if config.experiment == "off" else config.experiment,
            floor=config.experiment_floor, seed=config.seed,
        )
        self.attribution = Attribution(config.attribution_window_s, config.max_sessions)
        self.strategies = frozenset({*self.arms, *labels})
        self._assigned: ExpiringDict[str, tuple[str, float]] = ExpiringDict(config.max_sessions, config.session_ttl_s)

    _now = -math.inf  # the latest event time learned

    def choose(self, session_id: str, now: float) -> tuple[str, float]:
        """The session's strategy and the probability it was assigned with (1 when the experiment is off);
        assigned now if the session has none (it was not learned here)."""
        if not self.on:
            return self.default, 1.0
        assigned = self._assigned.peek(session_id)
        if assigned is None:
            assigned = self._assign(session_id, now)
        return assigned

    def assigned(self, session_id: str, now: float) -> str:
        """The strategy the session is served at event time ``now``, assigning none."""
        if not self.on:
            return self.default
        assigned = self._assigned.peek_fresh(session_id, now)
        return self.default if assigned is None else assigned[0]

    def _assign(self, session_id: str, now: float) -> tuple[str, float]:
        """Kept while the session is active (``session_ttl_s`` after its last event)."""
        assigned = self._assigned.peek_fresh(session_id, now)
        if assigned is None:
            # A session whose key moved from another worker keeps the strategy its impressions named.
            shown = self.attribution.last_shown(session_id, "session")
            assigned = shown if shown is not None and shown[0] in self.arms else self.bandit.choose(session_id)
        self._assigned.set(session_id, assigned, now)
        return assigned

    def learn_many(self, events: Iterable[Event], counted: Callable[[str], bool] | None = None) -> OutcomeCounts:
        """Join the batch's outcomes to their lists, count those of the sessions ``counted`` says (default: all;
        every worker learns every event, each counts its own sessions), let the bandit learn them all, and
        assign a strategy to each new session counted."""
        counts: OutcomeCounts = Counter()
        reward = self.config.experiment_reward
        now = None
        for event in events:
            now = self._now = max(self._now, event.ts)
            if self.on and event.type != "impression" and (counted is None or counted(event.session_id)):
                self._assign(event.session_id, now)
            if event.list_ref is None and event.type not in ("add_to_cart", "purchase"):
                continue  # nothing to join: the common case costs one test
            for outcome in self.attribution.learn_one(event):
                if outcome.strategy not in self.strategies:
                    continue
                if counted is None or counted(event.session_id):
                    counts[(outcome.surface, outcome.strategy, outcome.kind)] += 1
                if outcome.surface == "session" and self.on:
                    if outcome.kind == "impression":
                        self.bandit.update(outcome.strategy, 0.0, pulls=1)
                    elif outcome.kind == reward:
                        self.bandit.update(outcome.strategy, 1.0, pulls=0)
        if now is not None:
            self._assigned.expire(now)
        return counts

    def allocation(self) -> dict[str, float]:
        """The share of new sessions each arm gets now."""
        if not self.on:
            return {arm: float(arm == self.default) for arm in self.arms}
        return self.bandit.probabilities()

    def size(self) -> dict[str, int]:
        return {**self.attribution.size(), "experiment_sessions": len(self._assigned)}

    def evictions(self) -> dict[str, int]:
        return {**self.attribution.evictions(), "experiment_sessions": self._assigned.evictions}
