"""The served recommender: every model of the stack, fed one batch at a time, with fallbacks.

The worker and the benchmarks drive this class. Every model learns the batch in order (``learn_many``:
the matrix factorisation in one vectorised step), in runs cut before each sampled positive event, which is
first scored against the lists its session and user would be shown then (predict before learn,
models/online_eval.py); then each touched session, user, item and category gets its list recomputed once.

A batch is learned in two tiers. The session tier (every model but the forecaster and a separate item
model) learns it at once and rebuilds the touched session lists: what a shopper sees next. The deferred
tier learns the events it has pending and rebuilds every other list they changed when the caller asks
(:meth:`RecommenderStack.process_deferred`): a worker under live load gathers them into fewer, larger
steps, where user lists scored together and throttled lists cost less per event. ``process`` runs both
tiers on each batch. The online hit-rate is scored in the session tier, which holds every model a scored
session or user list reads.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from sys import intern

from shopstream.contracts.lists import BY_NAME, LISTS, RecList
from shopstream.models.base import (
    GlobalRecommender,
    ItemRecommender,
    Model,
    Scored,
    SessionRecommender,
    UserRecommender,
)
from shopstream.models.bounded import ExpiringDict, LRUDict, SeenIds
from shopstream.models.events import Event
from shopstream.models.forecast import WindowedForecaster
from shopstream.models.mf import ImplicitMF
from shopstream.models.online_eval import Learners, PrequentialScorer, ScoreDelta, Shown
from shopstream.models.ownership import KeyOwner
from shopstream.models.propensity import SessionPropensity
from shopstream.models.repeat_blend import RepeatBuyBlend
from shopstream.models.session_models import build_session_model
from shopstream.models.stack_config import StackConfig
from shopstream.models.strategies import OutcomeCounts, build_experiment
from shopstream.models.throttle import RefreshThrottle
from shopstream.models.transitions_index import IndexedTransitions
from shopstream.models.trending import Trending


@dataclass(slots=True)
class BatchOutput:
    lists: list[RecList] = field(default_factory=list)
    learned: Counter[str] = field(default_factory=Counter)  # by event type
    duplicates: Counter[str] = field(default_factory=Counter)
    scores: list[ScoreDelta] = field(default_factory=list)  # online hit-rate counts since the last batch
    outcomes: OutcomeCounts = field(default_factory=Counter)  # attributed (surface, strategy, kind) counts
    allocation: dict[tuple[str, str], float] = field(default_factory=dict)  # (surface, strategy) -> share of new keys


class RecommenderStack:
    """All models behind one ``process`` call, with the fallback chain session → trending.

    Examples
    --------
    >>> stack = RecommenderStack(StackConfig(top_k=3))
    >>> batch = [(Event(f"e{i}", 1e9 + i, "s1", "view", item), 0.0) for i, item in enumerate("abab")]
    >>> out = stack.process(batch)
    >>> sorted({(r.kind, r.id) for r in out.lists})
    [('item', 'a'), ('item', 'b'), ('session', 's1'), ('trending', 'all')]
    >>> stack.process(batch).duplicates
    Counter({'view': 4})
    """

    def __init__(
        self,
        config: StackConfig | None = None,
        session_model: SessionRecommender | None = None,
        item_model: ItemRecommender | None = None,
        trending: GlobalRecommender | None = None,
        user_model: UserRecommender | None = None,
    ) -> None:
        self.config = config = config or StackConfig()
        transitions = IndexedTransitions(
            max_items=config.max_items, max_sessions=config.max_sessions, session_ttl_s=config.session_ttl_s
        )
        self.session_model = session_model or build_session_model(config, transitions)
        # A session model that also serves similar items (transitions, or the blend wrapping it) serves them.
        self.item_model = item_model or (
            self.session_model if isinstance(self.session_model, ItemRecommender) else transitions
        )
        self.trending = trending or Trending(
            half_life_s=config.trending_half_life_s, max_items=config.max_items
        )
        self.user_model = user_model or RepeatBuyBlend(
            mf=ImplicitMF(
                n_negatives=config.mf_negatives, max_users=config.max_users, max_items=config.max_items,
                seed=config.seed,
            ),
            max_users=config.max_users,
            seed=config.seed,
        )
        self.forecaster = WindowedForecaster(
            window_s=config.forecast_window_s, max_series=config.max_items,
            allowed_lateness_s=config.forecast_lateness_s,
        )
        self.propensity = SessionPropensity(timeout_s=config.session_ttl_s, max_sessions=config.max_sessions)
        self.experiment = build_experiment(
            config, transitions, self.session_model, self.item_model, self.trending, self.user_model
        )
        # Trending tops up every session list, and the online hit-rate scores each user's list at the event
        # that follows it: both learn with the session models, as do the strategies' arms.
        session_tier = (self.session_model, self.propensity, self.trending, self.user_model, *self.experiment.models())
        parts = (*session_tier, self.item_model, self.forecaster)
        self.models = list({id(m): m for m in parts}.values())
        self._session_tier = self.models[: len({id(m) for m in session_tier})]
        self._deferred_tier = self.models[len(self._session_tier) :]
        # The deferred tier's backlog: events the session tier learned, the keys they touched (earliest
        # origin each) and their earliest origin.
        self._deferred_events: list[Event] = []
        self._deferred_touched: dict[tuple[str, str], float] = {}
        self._deferred_origin = math.inf
        self.scorer = PrequentialScorer(config.hit_rate_sample, config.session_ttl_s, config.max_sessions)
        self._seen = SeenIds(config.dedupe_window)
        # The keys this stack writes; the worker narrows it to its slots (models/ownership.py).
        self.owner = KeyOwner.everything()
        self.learned = 0  # events learned since the stack was created, restores included: each counts once
        # What each session was last shown, by which model: a user the user model does not know is shown it.
        # Entries go with the session (its TTL), so they level off on an endless stream.
        self._served_sessions: ExpiringDict[str, Shown] = ExpiringDict(config.max_sessions, config.session_ttl_s)
        # Every key an event touched, whoever writes it, most recently touched last: what the stack can
        # publish again when the store lost its keys or this worker took over their slots (held_lists).
        self._live_sessions: ExpiringDict[str, None] = ExpiringDict(config.max_sessions, config.session_ttl_s)
        self._live: dict[str, LRUDict[str, None]] = {
            spec.name: LRUDict(config.max_users if spec.name == "user" else config.max_items)
            for spec in LISTS if spec.name != "session"
        }
        # Keys touched while holding back (hold_back): checkpointed with the state they were touched in.
        self._held_back: dict[tuple[str, str], None] | None = None
        self._held_back_overflowed = False
        self._last_category: ExpiringDict[str, str] = ExpiringDict(config.max_sessions, config.session_ttl_s)
        self._now = -math.inf  # event time of the batch being processed
        self._last_session: LRUDict[str, str] = LRUDict(config.max_users)
        self._user_lists: dict[str, list[Scored]] = {}  # the user model's lists of the keys being recomputed
        self._propensities: dict[str, float | None] = {}  # and the purchase propensities of the sessions
        self._session_lists: dict[str, tuple[str, float, list[Scored], str]] = {}  # and the sessions' lists
        # Trending lists fill most session lists: each is computed once per refresh interval (event time).
        self._trending_memo: dict[str | None, list[Scored]] = {}
        self._trending_memo_since = -math.inf
        # Item and user lists change slowly while popular items and active users are touched by every
        # batch: their keys wait here (with the oldest origin) until the list is older than its refresh.
        self._throttle = RefreshThrottle(
            {spec.name: getattr(config, spec.refresh_setting) for spec in LISTS if spec.refresh_setting},
            config.max_items + config.max_users,
        )
        self._builders = self._list_builders()

    def _list_builders(self) -> dict[str, Callable[[str], RecList | None]]:
        """How each kind of list of the contract is built; a kind without a builder is a wiring error."""
        builders: dict[str, Callable[[str], RecList | None]] = {
            "session": self._session_list,
            "user": self._user_list,
            "item": self._item_list,
            "trending": lambda _: self._ranked("trending", "all", self._fresh_trending(None), self.trending.name),
            "category": lambda key: self._ranked("category", key, self._fresh_trending(key), self.trending.name),
            "forecast_shop": lambda _: self._forecast("forecast_shop", "shop", None),
            "forecast_category": lambda key: self._forecast("forecast_category", "category", key),
            "forecast_item": lambda key: self._forecast("forecast_item", "item", key),
        }
        if unbuilt := set(BY_NAME) - set(builders):
            raise TypeError(f"no builder for the list kinds {sorted(unbuilt)}")
        return builders

    def __getstate__(self) -> dict[str, object]:
        """Everything the stack knows, for a checkpoint; the builders are code, rebuilt on restore."""
        state = self.__dict__.copy()
        del state["_builders"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._builders = self._list_builders()

    def process(self, batch: Sequence[tuple[Event, float]]) -> BatchOutput:
        """Learn a batch of ``(event, origin_time)`` in order, in both tiers, and return the lists it changed."""
        out = self.process_sessions(batch)
        out.lists += self.process_deferred().lists
        return out

    def process_sessions(self, batch: Sequence[tuple[Event, float]]) -> BatchOutput:
        """The session tier of :meth:`process`: the session lists the batch changed; the rest waits for
        :meth:`process_deferred`."""
        out = BatchOutput()
        touched: dict[tuple[str, str], float] = {}
        deferred = self._deferred_touched
        now = max((event.ts for event, _ in batch), default=0.0)
        self._advance(now)
        self._deferred_origin = min(self._deferred_origin, min((origin for _, origin in batch), default=math.inf))
        fresh: list[Event] = []
        # Whose each key id is, decided once per batch however many of its events touch it.
        owned: dict[str, bool] = {}
        owns = self._writing
        live: dict[tuple[str, str], None] = {}
        for event, origin in batch:
            # A redelivered event is not learned again, but its lists are built again: the worker that
            # first learned it may have stopped before writing them (at-least-once for the lists too).
            if self._seen.first_time(event.event_id):
                _intern_ids(event)
                fresh.append(event)
                out.learned[event.type] += 1
            else:
                out.duplicates[event.type] += 1
            if event.type == "impression":  # exposure, not interest: no model's list changes (attribution counts it)
                continue
            keys = [("session", event.session_id), ("item", event.item_id), ("trending", "all")]
            if event.user_id is not None:
                keys.append(("user", event.user_id))
            if event.category is not None:
                keys.append(("category", event.category))
            if event.type == "purchase":
                keys += [("forecast_shop", "all"), ("forecast_item", event.item_id)]
                if event.category is not None:
                    keys.append(("forecast_category", event.category))
            for key in keys:
                live[key] = None
                mine = owned.get(key[1])
                if mine is None:
                    mine = owned[key[1]] = owns(key[1])
                if not mine:  # another worker writes this list
                    continue
                if key[0] in self._throttle.intervals:  # a kind with a refresh interval waits its turn
                    self._throttle.mark(key, origin, event.ts)
                else:
                    tier = touched if key[0] == "session" else deferred
                    if key not in tier or origin < tier[key]:
                        tier[key] = origin
        self._note_live(live)
        self._hold(live)
        self.scorer.learn(fresh, owns, self._learners(owns, out.outcomes), self._shown_before)
        self._last_category.expire(self._now)
        self._deferred_events += fresh
        self.learned += len(fresh)
        out.allocation = self.experiment.allocation()
        out.lists = self._recompute_all(touched)
        out.scores = self.scorer.scores.drain()
        return out

    def _learners(self, owns: Callable[[str], bool], outcomes: OutcomeCounts) -> Learners:
        """The session tier's models (independent: each learns the whole batch in order, in runs) by the lists
        that read them, with the experiment and the stack's own session context alongside the session arms."""
        session_read = {id(self.trending), *map(id, self.experiment.session_arms.values())}
        session_models = [model for model in self._session_tier if id(model) in session_read]
        user_models = [model for model in self._session_tier
                       if model is self.user_model and id(model) not in session_read]
        read = session_read | {id(self.user_model)}

        def session(events: Sequence[Event]) -> None:
            for event in events:
                if event.user_id is not None:
                    self._last_session[event.user_id] = event.session_id
                if event.category is not None:
                    self._last_category.set(event.session_id, event.category, event.ts)
            for model in session_models:
                model.learn_many(events)
            outcomes.update(self.experiment.learn_many(events, owns))

        def learner(models: list[Model]) -> Callable[[Sequence[Event]], None]:
            def learn(events: Sequence[Event]) -> None:
                for model in models:
                    model.learn_many(events)
            return learn

        rest = [model for model in self._session_tier if id(model) not in read]
        return Learners(session, learner(user_models), learner(rest))

    def deferred_backlog(self) -> tuple[int, float]:
        """Events the deferred tier has pending, and the earliest origin time among the batches since it
        last ran and the lists it left for later (``inf`` when there are none)."""
        return len(self._deferred_events), self._deferred_origin

    def process_deferred(self, budget_s: float = math.inf) -> BatchOutput:
        """The deferred tier: its models learn the pending events, then the user, item, trending and
        forecast lists they changed, and the throttled lists now due, are recomputed.

        Lists are built in chunks of ``DEFERRED_CHUNK`` until ``budget_s`` seconds have passed (the learning, the
        forecaster's and a separate item model's, is not bounded: it is a fraction of a µs an event): the rest are
        built first by the next call, so a burst of due lists (every item touched in one refresh interval comes
        due at once) does not hold the next session step back for its whole length."""
        events, self._deferred_events = self._deferred_events, []
        touched, self._deferred_touched = self._deferred_touched, {}
        origin, self._deferred_origin = self._deferred_origin, math.inf
        periods = self.forecaster.periods
        for model in self._deferred_tier:
            model.learn_many(events)
        owns = self._writing
        if self.forecaster.periods > periods and owns("all"):
            # A window closed (any event moves the watermark): the shop forecast changed even without a purchase.
            touched.setdefault(("forecast_shop", "all"), origin)
        for key, released in self._throttle.due(self._now):  # a list left over by the last run keeps its origin
            if released < touched.get(key, math.inf):
                touched[key] = released
        self._hold(touched)  # pending since before a checkpoint: written when the hold ends
        # Keys marked while this stack held their slot; a rebalance may have dealt it to another worker since.
        keys = [(key, o) for key, o in touched.items() if owns(key[1])]
        deadline = time.perf_counter() + budget_s
        lists: list[RecList] = []
        for start in range(0, len(keys), DEFERRED_CHUNK):
            if start and time.perf_counter() >= deadline:
                self._deferred_touched = dict(keys[start:])
                self._deferred_origin = min(self._deferred_touched.values())
                break
            lists += self._recompute_all(dict(keys[start : start + DEFERRED_CHUNK]))
        return BatchOutput(lists=lists)

    def flush(self, now: float) -> BatchOutput:
        """The deferred tier's pending work and the throttled lists due by ``now`` (event time), for when no
        batch comes to release them."""
        self._advance(now)
        return self.process_deferred()

    def _recompute_all(self, touched: dict[tuple[str, str], float]) -> list[RecList]:
        # The user model scores the touched users it serves together (one matrix product per chunk, not per user),
        # the propensity model the touched sessions.
        choose = self.experiment.choose
        users = [key for kind, key in touched
                 if kind == "user" and choose("user", key, self._now)[0] not in _NOT_USER_MODEL]
        # Scoring readies parts shared by every user of an MF update: not for none (most session-tier steps).
        self._user_lists = (
            dict(zip(users, self.user_model.recommend_users(users, self.config.top_k), strict=True)) if users else {}
        )
        sessions = [key for kind, key in touched if kind == "session"]
        self._propensities = dict(zip(sessions, self.propensity.predict_sessions(sessions), strict=True))
        self._session_lists = self._sessions_ranked(sessions)
        # Sessions before users: a user the user model does not know yet is served their session's list.
        ordered = sorted(touched.items(), key=lambda kv: kv[0][0] == "user")
        return [lst for key, origin in ordered if (lst := self._recompute(*key, origin))]

    def _shown_before(self, event: Event, session: bool, user: bool, now: float) -> list[tuple[str, Shown | None]]:
        """The lists ``event``'s session and user would be shown now, by the served lists' builders for their
        strategies, without writing or remembering them, and from models serving uncached (their answers then
        depend on what they learned only): what the online hit-rate scores ``event`` against before it is
        learned. A user's list falls back on the list their session would be shown now, whichever worker
        writes that session's."""
        k = self.config.top_k

        def trending(category: str | None) -> list[Scored]:
            return self.trending.top(k, category)

        shown: list[tuple[str, Shown | None]] = []
        with ExitStack() as uncached:
            for model in self.models:
                uncached.enter_context(model.uncached())
            if session:
                shown.append(("session", self._session_shown(event.session_id, now, trending)))
            last = None if event.user_id is None else self._last_session.peek(event.user_id)
            if user and last is not None:  # the user has a list once an event named them
                user_id: str = event.user_id  # type: ignore[assignment]
                strategy = self.experiment.surfaces["user"].assigned(user_id, now)
                ranked = self.user_model.recommend_users([user_id], k)[0] if strategy not in _NOT_USER_MODEL else []
                fallback = None if ranked or strategy == "trending" else self._session_shown(last, now, trending)
                category = self._last_category.peek_fresh(last, now)
                shown.append(("user", _shown(self._user_ranked(user_id, ranked, fallback, category, trending))))
        return shown

    def _session_shown(self, key: str, now: float, trending: Callable[[str | None], list[Scored]]) -> Shown | None:
        arm = self.experiment.session_arms[self.experiment.surfaces["session"].assigned(key, now)]
        ranked = arm.recommend_session(key, self.config.top_k)
        return _shown(self._session_ranked(key, ranked, arm.name, self._last_category.peek_fresh(key, now), trending))

    def _sessions_ranked(self, sessions: list[str]) -> dict[str, tuple[str, float, list[Scored], str]]:
        """Each session's strategy, the probability it was chosen with, its list and the list's model: the lists
        of one strategy's sessions built together (one kernel call for the item graphs' lists)."""
        by_strategy: dict[tuple[str, float], list[str]] = {}
        for key in sessions:
            by_strategy.setdefault(self.experiment.choose("session", key, self._now), []).append(key)
        chosen: dict[str, tuple[str, float, list[Scored], str]] = {}
        for (strategy, chosen_with), keys in by_strategy.items():
            arm = self.experiment.session_arms[strategy]
            for key, ranked in zip(keys, arm.recommend_sessions(keys, self.config.top_k), strict=True):
                chosen[key] = (strategy, chosen_with, ranked, arm.name)
        return chosen

    def _recompute(self, kind: str, key: str, origin: float) -> RecList | None:
        rec = self._builders[kind](key)
        if rec is not None:
            rec.origin = origin
        return rec

    def _note_live(self, keys: dict[tuple[str, str], None]) -> None:
        for kind, key in keys:
            if kind == "session":
                self._live_sessions.set(key, None, self._now)
            else:
                self._live[kind][key] = None

    def hold_back(self) -> None:
        """Build no list from now on, and remember every key touched, until :meth:`release_held_back`.

        A restored worker replays the events after its checkpoint before the group has dealt it slots, so it cannot
        know which lists are its to write; once dealt, it writes those of the keys held back (docs/design.md).
        Holding back again goes on with the keys already held (a checkpoint taken meanwhile carries them)."""
        if self._held_back is None:
            self._held_back, self._held_back_overflowed = {}, False

    @property
    def holding_back(self) -> bool:
        return self._held_back is not None

    @property
    def _writing(self) -> KeyOwner:
        """Whose lists the stack builds as it learns: its owner's, none while holding back."""
        return _NO_KEYS if self.holding_back else self.owner

    def _hold(self, keys: Iterable[tuple[str, str]]) -> None:
        held = self._held_back
        if held is None or self._held_back_overflowed:
            return
        held.update(dict.fromkeys(keys))
        if len(held) > self.config.max_sessions:  # more than a republish of everything would write
            held.clear()
            self._held_back_overflowed = True

    def release_held_back(self) -> list[tuple[str, list[str]]] | None:
        """The keys touched since :meth:`hold_back`, per kind in :meth:`held_lists`'s order (every held list if
        more than ``max_sessions`` were); None if not holding back. Holding back stops.

        >>> stack = RecommenderStack(StackConfig(top_k=3))
        >>> stack.hold_back()
        >>> stack.process([(Event("e1", 1e9, "s1", "view", "a"), 0.0)]).lists
        []
        >>> stack.release_held_back()
        [('trending', ['all']), ('item', ['a']), ('session', ['s1']), ('forecast_shop', ['all'])]
        >>> stack.release_held_back() is None
        True
        """
        held, overflowed, self._held_back = self._held_back, self._held_back_overflowed, None
        if held is None:
            return None
        if overflowed:
            return self.held_lists()
        by_kind: dict[str, list[str]] = {}
        for kind, key in reversed(held):
            by_kind.setdefault(kind, []).append(key)
        if ("forecast_shop", "all") not in held:  # a closed window changes it without a purchase
            by_kind["forecast_shop"] = ["all"]
        return sorted(by_kind.items(), key=lambda kind_ids: len(kind_ids[1]))

    def held_lists(self) -> list[tuple[str, list[str]]]:
        """The ids of the lists this stack can rebuild, whoever writes them (a republish keeps its slots' ones),
        per kind, the most recently touched first; the kinds with fewest lists (shop-wide, categories: every
        reader's fallback) come first. What a worker publishes again when the store lost its keys, or when it
        took over key slots from a worker that may have died before writing them.

        >>> stack = RecommenderStack(StackConfig(top_k=3))
        >>> _ = stack.process([(Event(f"e{i}", 1e9 + i, s, "view", "ab"[i % 2]), 0.0) for i, s in enumerate("xyxy")])
        >>> [(kind, ids) for kind, ids in stack.held_lists() if ids]
        [('trending', ['all']), ('session', ['y', 'x']), ('item', ['b', 'a'])]
        >>> [(rec.kind, rec.id, rec.items) for rec in stack.rebuild("session", ["y"])]
        [('session', 'y', ['b', 'a'])]
        """
        held = {"session": self._live_sessions.newest_first()}
        held |= {kind: list(reversed(ids)) for kind, ids in self._live.items()}
        return sorted(held.items(), key=lambda kind_ids: len(kind_ids[1]))

    def rebuild(self, kind: str, ids: Sequence[str]) -> list[RecList]:
        """The current lists of ``kind`` for ``ids`` (from :meth:`held_lists`), those the models still hold."""
        return self._recompute_all(dict.fromkeys(((kind, key) for key in ids), self._now))

    def _ranked(self, kind: str, key: str, ranked: list[Scored], model: str) -> RecList | None:
        if not ranked:
            return None
        return RecList(kind, key, model, [item for item, _ in ranked], [score for _, score in ranked], 0.0)

    def _session_list(self, key: str) -> RecList | None:
        """The list of the strategy the session is assigned, with the probability it was assigned with."""
        strategy, chosen_with, ranked, model = self._session_lists.pop(key)
        rec = self._session_ranked(key, ranked, model, self._last_category.peek(key), self._trending)
        if rec is not None:
            self._served_sessions.set(key, (rec.model, rec.items), self._now)
            rec.extra = {"strategy": strategy, "propensity": chosen_with}
            if (propensity := self._propensities.pop(key, None)) is not None:
                rec.extra["purchase_propensity"] = round(propensity, 4)
        return rec

    def _session_ranked(
        self, key: str, ranked: list[Scored], model: str, category: str | None,
        trending: Callable[[str | None], list[Scored]],
    ) -> RecList | None:
        """The session's list by ``model``, topped up from the trending items of its last category, then the
        shop's (asked for only when the list is short)."""
        k = self.config.top_k
        model = model if ranked else self.trending.name
        for scope in (category, None):
            if len(ranked) < k:
                ranked = _fill(ranked, trending(scope), k)
        return self._ranked("session", key, ranked[:k], model)

    def _item_list(self, key: str) -> RecList | None:
        """The list of the strategy drawn for this write of the item's key, with the probability it was drawn with."""
        strategy, chosen_with = self.experiment.choose("item", key, self._now)
        arm = self.experiment.item_arms[strategy]
        rec = self._ranked("item", key, arm.similar_items(key, self.config.top_k), arm.name)
        if rec is not None:
            rec.extra = {"strategy": strategy, "propensity": chosen_with}
        return rec

    def _user_list(self, user_id: str) -> RecList | None:
        """The list of the user's strategy: the user model's (scored beforehand with the other touched users),
        else what the user's current session is being served, else trending in the session's category."""
        strategy, chosen_with = self.experiment.choose("user", user_id, self._now)
        session = self._last_session.peek(user_id)
        served = self._served_sessions.peek(session) if session is not None and strategy != "trending" else None
        category = self._last_category.peek(session) if session is not None else None
        rec = self._user_ranked(user_id, self._user_lists.pop(user_id, []), served, category, self._trending)
        if rec is not None:
            rec.extra = {"strategy": strategy, "propensity": chosen_with}
        return rec

    def _user_ranked(
        self, user_id: str, ranked: list[Scored], session_list: Shown | None, category: str | None,
        trending: Callable[[str | None], list[Scored]],
    ) -> RecList | None:
        """The user model's ``ranked`` list topped up with the shop's trending items, else ``session_list`` (the
        list of the user's session), else the trending items of ``category`` (the session's), then the shop's."""
        k = self.config.top_k
        if ranked:
            ranked, model = (ranked[:k] if len(ranked) >= k else _fill(ranked, trending(None), k)), self.user_model.name
        elif session_list is None:
            ranked, model = _fill(trending(category), trending(None), k), self.trending.name
        else:
            ranked, model = [(item, 1.0 / (rank + 1)) for rank, item in enumerate(session_list[1])], session_list[0]
        return self._ranked("user", user_id, ranked, model)

    def _forecast(self, kind: str, series: str, key: str | None) -> RecList | None:
        values = self.forecaster.forecast((series, key), self.config.forecast_horizon)
        if not values:
            return None
        extra = {"window_s": self.config.forecast_window_s, "forecast": [round(v, 3) for v in values]}
        return RecList(kind, key or "all", self.forecaster.name, [], [], 0.0, extra)

    def _advance(self, now: float) -> None:
        """Event time moved on: expire per-session state and the trending memo."""
        self._now = max(self._now, now)
        self._served_sessions.expire(self._now)
        self._live_sessions.expire(self._now)
        if now - self._trending_memo_since >= self.config.trending_refresh_s:
            self._trending_memo.clear()
            self._trending_memo_since = now

    def _trending(self, category: str | None) -> list[Scored]:
        """Trending as memoised for topping up lists: up to ``trending_refresh_s`` old."""
        ranked = self._trending_memo.get(category)
        return self._fresh_trending(category) if ranked is None else ranked

    def _fresh_trending(self, category: str | None) -> list[Scored]:
        """Trending now, for the trending and category keys: the throttle releases a key once for every change it
        held back, so its list must not come from a memo older than those changes (it refreshes the memo)."""
        ranked = self._trending_memo[category] = self.trending.top(self.config.top_k, category)
        return ranked

    def evictions(self) -> dict[str, int]:
        """Cap evictions of every model, summed by kind (each model holds its own entities)."""
        totals: Counter[str] = Counter(
            {"served_lists": self._served_sessions.evictions}
        )
        totals.update(self.experiment.evictions())
        for model in self.models:
            totals.update(model.evictions())
        return dict(totals)

    def size(self) -> dict[str, int]:
        sizes: dict[str, int] = {
            "served_lists": len(self._served_sessions), "dedupe_ids": len(self._seen),
            **self.experiment.size(),
        }
        for model in self.models:
            for kind, n in model.size().items():
                sizes[kind] = max(sizes.get(kind, 0), n)
        return sizes


#: The user strategies whose lists do not come from the user model.
_NOT_USER_MODEL = frozenset({"session", "trending"})
#: Lists the deferred tier builds between looks at its time budget (~10 ms of user and item lists).
DEFERRED_CHUNK = 256
_NO_KEYS = KeyOwner(1, frozenset())


def _intern_ids(event: Event) -> None:
    """One string per id, whatever event it came in: the histories, graphs, sessions and lists that keep
    an id then share it instead of each holding its own copy from JSON decoding."""
    event.session_id = intern(event.session_id)
    event.item_id = intern(event.item_id)
    if event.user_id is not None:
        event.user_id = intern(event.user_id)
    if event.category is not None:
        event.category = intern(event.category)


def _shown(rec: RecList | None) -> Shown | None:
    return None if rec is None else (rec.model, rec.items)


def _fill(ranked: list[Scored], fallback: list[Scored], k: int) -> list[Scored]:
    """Top up a short list from a fallback list, without repeats; fallback scores rank below."""
    if len(ranked) >= k or not fallback:
        return ranked[:k]
    have = {item for item, _ in ranked}
    floor = min((score for _, score in ranked), default=1.0)
    top_fallback = fallback[0][1] or 1.0
    extra = [(item, floor * 0.5 * score / top_fallback) for item, score in fallback if item not in have]
    return ranked + extra[: k - len(ranked)]
