"""Strategies as arms: which strategy fills each served list, chosen by a bandit per surface.

Three surfaces run the experiment, each with its own bandit (Thompson sampling, UCB or a fixed A/B split,
:mod:`shopstream.models.bandit`) over its own arms (``StackConfig.arms(surface)``):

- ``session``: each new session is assigned a session model and keeps it while active, so a shopper sees
  one strategy's lists and the session's clicks speak for it;
- ``user``: each user, while active (the session TTL), is assigned the user model, the list their session is
  served, or trending;
- ``item``: an item's list is one key read by every shopper on the item's page, so no shopper's assignment
  can be written into it; the strategy is drawn afresh each time the key is written (at most every
  ``item_refresh_s``), with the probability it was drawn with in the payload. The unit of randomisation is
  the written list, not the shopper: a popular item's key is rewritten often and sees every arm.

A session or user is assigned its strategy at its first event as it is learned, from the bandit as it stands
after every earlier event, by every worker in event order: the assignments are a function of the event stream
(not of its batching, nor of when lists are written), the same on every worker that learned the same events,
so a key keeps its strategy when it moves to another worker. A worker whose history differs (it started cold)
keeps the strategy the key's impressions name: every worker learns every impression.

With ``StackConfig.experiment`` off, every list is filled by the surface's configured model with propensity 1.
The bandits learn from the attributed outcomes of their surface's lists (:mod:`shopstream.models.attribution`):
each impression is a trial, each ``experiment_reward`` (click, add-to-cart or purchase) a success. Whatever the
mode, outcomes are counted per surface and strategy for the metrics, for strategy names in a fixed set (the arms
and the stack's model names), so a client cannot grow the metric labels.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

from shopstream.models.attribution import Attribution, Outcome
from shopstream.models.bandit import Bandit
from shopstream.models.base import ItemRecommender, Model, Scored, SessionRecommender, UserRecommender
from shopstream.models.bounded import ExpiringDict, LRUDict
from shopstream.models.events import Event
from shopstream.models.session_knn import SessionKNN
from shopstream.models.session_models import vsknn
from shopstream.models.stack_config import StackConfig
from shopstream.models.transitions import SessionTransitions
from shopstream.models.trending import Trending

#: Outcome counts of a batch, by ``(surface, strategy, kind)``.
OutcomeCounts = Counter[tuple[str, str, str]]
#: The surfaces with a bandit, in the order their bandits are seeded.
SURFACES = ("session", "user", "item")


class TrendingArm(SessionRecommender):
    """The trending strategy: no session-specific items, so the engine's fill (the category's trending items,
    then the shop's) makes the whole list."""

    name = "trending"

    def learn_one(self, event: Event) -> None:
        """Trending learns in the engine's own trending model."""

    def recommend_session(self, session_id: str, k: int) -> list[Scored]:
        return []


class ItemTrendingArm(ItemRecommender):
    """The item page's trending strategy: what trends in the item's category (the category its latest event
    named), without the item itself.

    >>> trending = Trending()
    >>> arm = ItemTrendingArm(trending, max_items=10)
    >>> for i, item in enumerate("abbc"):
    ...     event = Event(f"e{i}", 1e9 + i, "s", "view", item, category="toys" if item != "c" else "books")
    ...     trending.learn_one(event)
    ...     arm.learn_one(event)
    >>> [item for item, _ in arm.similar_items("a", 5)], arm.similar_items("unknown", 5)
    (['b'], [])
    """

    name = "trending"

    def __init__(self, trending: Trending, max_items: int) -> None:
        self.trending = trending
        self._category: LRUDict[str, str] = LRUDict(max_items)

    def learn_one(self, event: Event) -> None:
        if event.category is not None and event.type != "impression":
            self._category[event.item_id] = event.category

    def similar_items(self, item_id: str, k: int) -> list[Scored]:
        category = self._category.peek(item_id)
        if category is None:
            return []
        return [(item, score) for item, score in self.trending.top(k + 1, category) if item != item_id][:k]

    def size(self) -> dict[str, int]:
        return {"items": len(self._category)}

    def evictions(self) -> dict[str, int]:
        return {"items": self._category.evictions}


class Surface:
    """One surface's choice of strategy per list key, with the probability it was chosen (the propensity).

    ``keep`` holds the assignments of a surface whose keys keep their strategy while active (sessions, users),
    by the event field that names the key (``keyed_by``); without it every list is drawn afresh (items).

    Examples
    --------
    >>> config = StackConfig(experiment="ab")
    >>> items = Surface("item", ("transitions", "trending"), "transitions", config)
    >>> items.choose("i1", 0.0) == items.choose("i1", 5.0), items.choose("i1", 0.0)[1]
    (True, 0.5)
    >>> Surface("item", ("transitions",), "transitions", StackConfig()).choose("i1", 0.0)
    ('transitions', 1.0)
    """

    def __init__(
        self, name: str, arms: Sequence[str], default: str, config: StackConfig,
        keep: ExpiringDict[str, tuple[str, float]] | None = None, keyed_by: str = "session_id",
        seed: int | None = None,
    ) -> None:
        self.name = name
        self.arms = tuple(arms)
        self.default = default
        self.on = config.experiment != "off"
        self.bandit = Bandit(
            self.arms, "thompson" if config.experiment == "off" else config.experiment,
            floor=config.experiment_floor, seed=config.seed if seed is None else seed,
        )
        self._assigned = keep
        self._keyed_by = keyed_by

    def choose(self, key: str, now: float) -> tuple[str, float]:
        """The strategy of ``key``'s list and the probability it was assigned with (1 when the experiment is
        off): a kept key's from :meth:`assign`. A kept key without one (the cap evicted it since the key's last
        event) is drawn one for this list alone, by a hash of the key: keeping it, or drawing from the bandit's
        generator, would make the assignments depend on when lists were written, not on the event stream alone."""
        if not self.on:
            return self.default, 1.0
        if self._assigned is None:
            return self.bandit.choose(key)
        return self._assigned.peek(key) or self.bandit.choose(key, keyed=True)

    def assign(self, key: str, now: float) -> tuple[str, float]:
        """Keep ``key``'s strategy, drawn now if it has none, until ``session_ttl_s`` after event time ``now``.
        Called at each of the key's events as it is learned, so that a key is drawn its strategy as the bandit
        stands after every earlier event: the assignments are a function of the event stream, not of how it was
        cut into batches or of when lists were written."""
        if self._assigned is None:
            return self.bandit.choose(key)
        assigned = self._assigned.peek_fresh(key, now) or self.bandit.choose(key)
        self._assigned.set(key, assigned, now)
        return assigned

    def assigned(self, key: str, now: float) -> str:
        """The strategy of ``key``'s list at event time ``now``, assigning none (the default when it has none)."""
        held = self._assigned.peek_fresh(key, now) if self.on and self._assigned is not None else None
        return self.default if held is None else held[0]

    def learn(self, outcome: Outcome, event: Event, reward: str, now: float) -> None:
        """An impression is a trial of its strategy, the ``reward`` kind of outcome a success. An impression
        also tells which strategy its key is assigned: a worker without one for the key (it started cold, or its
        cap evicted it) keeps it, so that it serves the same if the key moves to it."""
        if outcome.kind == "impression":
            self.bandit.update(outcome.strategy, 0.0, pulls=1)
            if self._assigned is None or outcome.propensity is None or outcome.strategy not in self.arms:
                return
            if (key := getattr(event, self._keyed_by)) is not None:
                shown = (outcome.strategy, outcome.propensity)
                self._assigned.set(key, self._assigned.peek_fresh(key, now) or shown, now)
        elif outcome.kind == reward:
            self.bandit.update(outcome.strategy, 1.0, pulls=0)

    def expire(self, now: float) -> None:
        if self._assigned is not None:
            self._assigned.expire(now)

    def allocation(self) -> dict[str, float]:
        """The share of new keys (or, for items, of lists written) each arm gets now."""
        if not self.on:
            return {arm: float(arm == self.default) for arm in self.arms}
        return self.bandit.probabilities()

    def held(self) -> int:
        return 0 if self._assigned is None else len(self._assigned)

    def evicted(self) -> int:
        return 0 if self._assigned is None else self._assigned.evictions


class StrategyExperiment:
    """The surfaces' choices and the counting of their outcomes.

    ``session_arms`` and ``item_arms`` are the models that fill those surfaces' lists, by strategy name;
    ``user_arms`` names the user surface's strategies (the engine builds those lists from its own models).

    Examples
    --------
    >>> arms = {"trending": TrendingArm()}
    >>> off = StrategyExperiment(StackConfig(), arms, {}, ("repeat_blend",), {"session": "trending",
    ...                          "user": "repeat_blend"})
    >>> off.choose("session", "s1", 0.0), off.choose("user", "u1", 0.0), sorted(off.allocation())
    (('trending', 1.0), ('repeat_blend', 1.0), [('session', 'trending'), ('user', 'repeat_blend')])
    """

    def __init__(
        self, config: StackConfig, session_arms: Mapping[str, SessionRecommender],
        item_arms: Mapping[str, ItemRecommender], user_arms: Sequence[str], defaults: Mapping[str, str],
        labels: Iterable[str] = (),
    ) -> None:
        self.config = config
        self.session_arms = dict(session_arms)
        self.item_arms = dict(item_arms)
        self.on = config.experiment != "off"
        self.attribution = Attribution(config.attribution_window_s, config.max_sessions)
        names = {"session": tuple(self.session_arms), "user": tuple(user_arms), "item": tuple(self.item_arms)}
        keep = {
            "session": ExpiringDict[str, tuple[str, float]](config.max_sessions, config.session_ttl_s),
            "user": ExpiringDict[str, tuple[str, float]](config.max_users, config.session_ttl_s),
        }
        self.surfaces = {
            surface: Surface(surface, names[surface], defaults[surface], config, keep.get(surface),
                             keyed_by=f"{surface}_id", seed=config.seed + 1000 * i)
            for i, surface in enumerate(SURFACES) if names[surface]
        }
        self.strategies = frozenset({*labels, *(arm for surface in self.surfaces.values() for arm in surface.arms)})
        self._now = -math.inf  # the latest event time learned

    def choose(self, surface: str, key: str, now: float) -> tuple[str, float]:
        """The strategy of the ``surface`` list of ``key`` and its propensity (see :meth:`Surface.choose`)."""
        return self.surfaces[surface].choose(key, now)

    def models(self) -> list[Model]:
        """The arms' models, which learn with the rest of the stack."""
        return [*self.session_arms.values(), *self.item_arms.values()]

    def learn_many(self, events: Iterable[Event], counted: Callable[[str], bool] | None = None) -> OutcomeCounts:
        """Join the batch's outcomes to their lists, count those of the sessions ``counted`` says (default: all;
        every worker learns every event, each counts its own sessions' outcomes, whatever the surface), let
        each surface's bandit learn its own, and keep (:meth:`Surface.assign`) the strategy of every session
        and user in event order: every worker, whichever keys it writes, so that workers that learned the same
        events assign the same strategies, and a key that moves to another worker keeps its strategy even
        before an impression names it."""
        counts: OutcomeCounts = Counter()
        reward = self.config.experiment_reward
        surfaces = self.surfaces if self.on else {}
        sessions, users = surfaces.get("session"), surfaces.get("user")
        now = None
        for event in events:
            now = self._now = max(self._now, event.ts)
            if event.type != "impression":
                if sessions is not None:
                    sessions.assign(event.session_id, now)
                if users is not None and event.user_id is not None:
                    users.assign(event.user_id, now)
            if event.list_ref is None and event.type not in ("add_to_cart", "purchase"):
                continue  # nothing to join: the common case costs one test
            for outcome in self.attribution.learn_one(event):
                if outcome.strategy not in self.strategies:
                    continue
                if counted is None or counted(event.session_id):
                    counts[(outcome.surface, outcome.strategy, outcome.kind)] += 1
                if (surface := surfaces.get(outcome.surface)) is not None:
                    surface.learn(outcome, event, reward, now)
        if now is not None:
            for surface in self.surfaces.values():
                surface.expire(now)
        return counts

    def allocation(self) -> dict[tuple[str, str], float]:
        """Each surface's share of new keys per arm, by ``(surface, strategy)``."""
        return {(name, arm): share for name, surface in self.surfaces.items()
                for arm, share in surface.allocation().items()}

    def size(self) -> dict[str, int]:
        return {**self.attribution.size(), **{f"experiment_{name}s": surface.held()
                                              for name, surface in self.surfaces.items() if name != "item"}}

    def evictions(self) -> dict[str, int]:
        return {**self.attribution.evictions(), **{f"experiment_{name}s": surface.evicted()
                                                   for name, surface in self.surfaces.items() if name != "item"}}


def build_experiment(
    config: StackConfig, transitions: SessionTransitions, session_model: SessionRecommender,
    item_model: ItemRecommender, trending: Trending, user_model: UserRecommender,
) -> StrategyExperiment:
    """The experiment over the stack's own models: an arm that is a model the stack already runs is that
    instance, and one V-SKNN (the session model's, if it is one) serves both the session and the item arms."""
    knn: list[SessionKNN] = [session_model] if isinstance(session_model, SessionKNN) else []

    def shared_knn() -> SessionKNN:
        if not knn:
            knn.append(vsknn(config))
        return knn[0]

    if config.experiment == "off":
        session_arms: dict[str, SessionRecommender] = {config.session_model: session_model}
        item_arms: dict[str, ItemRecommender] = {item_model.name: item_model}
        user_arms: tuple[str, ...] = (user_model.name,)
    else:
        session_named: dict[str, Callable[[], SessionRecommender]] = {
            "transitions": lambda: transitions, "trending": TrendingArm, config.session_model: lambda: session_model,
        }
        item_named: dict[str, Callable[[], ItemRecommender]] = {
            "transitions": lambda: transitions, "trending": lambda: ItemTrendingArm(trending, config.max_items),
        }
        session_arms = {arm: session_named.get(arm, shared_knn)() for arm in config.arms("session")}
        item_arms = {arm: item_named.get(arm, shared_knn)() for arm in config.arms("item")}
        user_arms = config.arms("user")
    defaults = {"session": config.session_model, "item": item_model.name, "user": user_model.name}
    return StrategyExperiment(
        config, session_arms, item_arms, user_arms, defaults,
        labels=(transitions.name, session_model.name, item_model.name, trending.name, user_model.name),
    )
