"""The served user list: a customer's own (time-decayed) buying history, blended with MF and trend.

In Online Retail almost half of what a returning customer buys they bought before, so their own
history must lead the list; MF preference and recent popularity order the rest and break ties.
Each part is scaled to [0, 1] before the weighted sum so the weights mean the same for every user.
The defaults were chosen on Online Retail's train part only (cases of the month before 2011-11-09,
fixed seed 0): history half-life, MF and popularity weights, MF popularity half-life, negatives.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from shopstream.models.base import DEFAULT_EVENT_WEIGHTS, Scored, UserRecommender
from shopstream.models.events import Event
from shopstream.models.item_index import top_k_rows
from shopstream.models.mf import ImplicitMF

_MAX_EXPONENT = 50.0
_CHUNK_CELLS = 1 << 21  # 16 MiB of float64 scores at a time


class _History:
    """One user's forward-decayed item scores, relative to the user's own landmark time."""

    __slots__ = ("scores", "t_ref")

    def __init__(self, ts: float) -> None:
        self.t_ref = ts
        self.scores: dict[str, float] = {}

    def add(self, item: str, weight: float, ts: float, tau: float, cap: int) -> None:
        if (ts - self.t_ref) / tau > _MAX_EXPONENT:
            shrink = math.exp((self.t_ref - ts) / tau)
            self.scores = {i: s * shrink for i, s in self.scores.items()}
            self.t_ref = ts
        self.scores[item] = self.scores.get(item, 0.0) + weight * math.exp((ts - self.t_ref) / tau)
        if len(self.scores) > cap:
            del self.scores[min(self.scores, key=self.scores.__getitem__)]


class RepeatBuyBlend(UserRecommender):
    """Repeat-purchase scores + MF scores + recent popularity, each normalised, weighted and summed.

    Parameters
    ----------
    mf
        Template of the factorisation model learned alongside (copied; its item rows index the
        blend); defaults to ``ImplicitMF(n_negatives=1, seed=seed)``: in the blend one negative
        scored as well as four on the validation month, at less than half the learning cost.
    history_half_life_s
        After this long a past interaction counts half in the user's own history.
    repeat_weight
        Weight of the user's history (its maximum is scaled to 1).
    mf_weight
        Weight of the MF preference (min-max scaled over the catalogue).
    popularity_weight
        Weight of the MF model's decayed item popularity (scaled by its maximum).
    event_weights
        History weight per event type; defaults to ``DEFAULT_EVENT_WEIGHTS`` (non-positive ignored).
    max_users
        Users whose history is kept (least recently active dropped).
    max_history
        Items per user history; the weakest is dropped beyond it.
    seed
        Seed of the default ``mf``.

    Examples
    --------
    >>> from shopstream.models.events import Event
    >>> model = RepeatBuyBlend(seed=1)
    >>> stream = [("u1", "tea"), ("u1", "tea"), ("u1", "mug")] + [("u2", "cake")] * 3
    >>> for i, (user, item) in enumerate(stream):
    ...     model.learn_one(Event(f"e{i}", 1e9 + i, "s", "purchase", item, user_id=user))
    >>> [item for item, _ in model.recommend_user("u1", 3)]   # a hot item can pass a weak own one
    ['tea', 'cake', 'mug']
    >>> model.recommend_user("stranger", 3)
    []
    """

    name = "repeat_blend"

    def __init__(
        self,
        mf: ImplicitMF | None = None,
        history_half_life_s: float = 365 * 86400.0,
        repeat_weight: float = 1.0,
        mf_weight: float = 0.05,
        popularity_weight: float = 1.0,
        event_weights: Mapping[str, float] | None = None,
        max_users: int = 1_000_000,
        max_history: int = 200,
        seed: int | None = None,
    ) -> None:
        self.mf = mf
        self.history_half_life_s = history_half_life_s
        self.repeat_weight = repeat_weight
        self.mf_weight = mf_weight
        self.popularity_weight = popularity_weight
        self.event_weights = event_weights
        self.max_users = max_users
        self.max_history = max_history
        self.seed = seed

        self._mf = ImplicitMF(n_negatives=1, seed=seed) if mf is None else copy.deepcopy(mf)
        self._weights = dict(DEFAULT_EVENT_WEIGHTS if event_weights is None else event_weights)
        self._tau = history_half_life_s / math.log(2)
        self._histories: OrderedDict[str, _History] = OrderedDict()  # recency order
        self._evicted_histories = 0
        self._shared: tuple[int, np.ndarray] | None = None

    def learn_one(self, event: Event) -> None:
        self.learn_many((event,))

    def learn_many(self, events: Iterable[Event]) -> None:
        """The MF learns the batch in one step; the histories event by event."""
        events = list(events)
        self._mf.learn_many(events)
        for event in events:
            weight = self._weights.get(event.type, 0.0)
            if event.user_id is None or weight <= 0.0:
                continue
            history = self._histories.get(event.user_id)
            if history is None:
                if len(self._histories) >= self.max_users:
                    self._histories.popitem(last=False)
                    self._evicted_histories += 1
                history = self._histories[event.user_id] = _History(event.ts)
            else:
                self._histories.move_to_end(event.user_id)
            history.add(event.item_id, weight, event.ts, self._tau, self.max_history)

    def item_scores_many(self, user_ids: Sequence[str]) -> tuple[list[int], np.ndarray]:
        """Blended scores per row of ``mf.item_index`` of the users known to both parts: their positions
        in ``user_ids``, and one row each, computed together (one matrix product, no loop over items)."""
        known_to_mf, preference = self._mf.item_scores_many(user_ids)
        keep = [j for j, i in enumerate(known_to_mf) if user_ids[i] in self._histories]
        positions = [known_to_mf[j] for j in keep]
        preference = preference[keep]
        scores = np.repeat(self._popularity_part()[None, :], len(positions), axis=0)
        if self.mf_weight and positions:
            finite = np.isfinite(preference)
            low = np.where(finite, preference, np.inf).min(axis=1, keepdims=True)
            high = np.where(finite, preference, -np.inf).max(axis=1, keepdims=True)
            span = np.where(high > low, high - low, 1.0)
            scaled = np.where(finite.any(axis=1, keepdims=True), (preference - np.where(finite, low, 0.0)) / span, 0.0)
            scores += self.mf_weight * scaled
        index = self._mf.item_index
        at_user: list[int] = []
        at_row: list[int] = []
        added: list[float] = []
        for j, i in enumerate(positions):
            rows, weights = [], []
            for item, weight in self._histories[user_ids[i]].scores.items():
                row = index.get(item)
                if row is not None:
                    rows.append(row)
                    weights.append(weight)
            if rows:
                top = max(weights)
                at_user += [j] * len(rows)
                at_row += rows
                added += [self.repeat_weight * w / top for w in weights]
        scores[at_user, at_row] += added  # (user, item) pairs are distinct: no accumulation needed
        return positions, scores

    def _popularity_part(self) -> np.ndarray:
        """The scaled popularity every user's blend starts from (unused rows ``-inf``), derived once per
        MF update, not once per user list."""
        if self._shared is None or self._shared[0] != self._mf.updates:
            popularity = self._mf.popularity()
            part = np.zeros(popularity.size)
            if self.popularity_weight and popularity.size and popularity.max() > 0:
                part += self.popularity_weight * popularity / popularity.max()
            part[~self._mf.in_use()] = -np.inf
            self._shared = (self._mf.updates, part)
        return self._shared[1]

    def recommend_user(self, user_id: str, k: int) -> list[Scored]:
        return self.recommend_users([user_id], k)[0]

    def recommend_users(self, user_ids: Sequence[str], k: int) -> list[list[Scored]]:
        """Lists for many users, scored in chunks of at most ``_CHUNK_CELLS`` (user, item) cells."""
        lists: list[list[Scored]] = [[] for _ in user_ids]
        step = max(1, _CHUNK_CELLS // max(1, len(self._mf.item_index)))
        ids = self._mf.item_index.ids
        for start in range(0, len(user_ids), step):
            positions, scores = self.item_scores_many(user_ids[start : start + step])
            for i, row, best in zip(positions, scores, top_k_rows(scores, k), strict=True):
                lists[start + i] = list(zip(ids(best), row[best].tolist(), strict=True))
        return lists

    def size(self) -> dict[str, int]:
        return {**self._mf.size(), "histories": len(self._histories)}

    def evictions(self) -> dict[str, int]:
        return {**self._mf.evictions(), "histories": self._evicted_histories}
