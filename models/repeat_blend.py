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
_CHUNK_USERS = 64  # users scored together: their histories and the popular items are the candidates
_CANDIDATES = 200  # most popular items every user's list is first ranked among


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
        self._shared: tuple[int, tuple[np.ndarray, np.ndarray, float]] | None = None

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

    def item_scores_many(
        self, user_ids: Sequence[str], rows: np.ndarray | None = None
    ) -> tuple[list[int], np.ndarray]:
        """Blended scores of the users known to both parts: their positions in ``user_ids``, and one row
        each, over every row of ``mf.item_index`` (or over ``rows`` only), computed together."""
        with_history = [i for i, user_id in enumerate(user_ids) if user_id in self._histories]
        return self._blend(user_ids, with_history, [self._own_rows(user_ids[i]) for i in with_history], rows)

    def _blend(
        self, user_ids: Sequence[str], with_history: list[int], own: list[dict[int, float]], rows: np.ndarray | None
    ) -> tuple[list[int], np.ndarray]:
        known, preference = self._mf.item_scores_many([user_ids[i] for i in with_history])
        positions = [with_history[j] for j in known]
        popularity = self._popularity_part()
        columns = slice(None) if rows is None else rows
        unused = ~self._mf.in_use()
        if self.mf_weight and positions and not unused.all():
            # In place, a few passes over the (users x items) matrix: the MF part is min-max scaled over
            # every item in use (unused item rows are -inf in every row), whichever columns are kept.
            preference[:, unused] = np.inf
            low = preference.min(axis=1, keepdims=True)
            preference[:, unused] = -np.inf
            high = preference.max(axis=1, keepdims=True)
            scores = preference[:, columns]
            scores -= low
            scores *= self.mf_weight / np.where(high > low, high - low, 1.0)
            scores += popularity[columns]
        else:
            scores = np.repeat(popularity[columns][None, :], len(positions), axis=0)
        column_of = None if rows is None else dict(zip(rows.tolist(), range(len(rows)), strict=True))
        at_user: list[int] = []
        at_column: list[int] = []
        added: list[float] = []
        for j, history in enumerate(own[j] for j in known):
            if history:
                scale = self.repeat_weight / max(history.values())
                at_user += [j] * len(history)
                at_column += list(history) if column_of is None else [column_of[row] for row in history]
                added += [w * scale for w in history.values()]
        scores[at_user, at_column] += added  # (user, item) pairs are distinct: no accumulation needed
        return positions, scores

    def _own_rows(self, user_id: str) -> dict[int, float]:
        """The user's history by item row (items the MF has dropped have no row, and no say)."""
        row_of = self._mf.item_index.row_of
        return {row: weight for item, weight in self._histories[user_id].scores.items()
                if (row := row_of(item)) is not None}

    def _popularity_part(self) -> np.ndarray:
        """The scaled popularity every user's blend starts from (unused rows ``-inf``), derived once per
        MF update, not once per user list."""
        return self._shared_parts()[0]

    def _shared_parts(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Per MF update: the popularity part, the rows of its ``_CANDIDATES`` largest, and the largest
        popularity part outside them (``-inf`` if every item in use is a candidate)."""
        if self._shared is None or self._shared[0] != self._mf.updates:
            popularity = self._mf.popularity()
            part = np.zeros(popularity.size)
            if self.popularity_weight and popularity.size and popularity.max() > 0:
                part += self.popularity_weight * popularity / popularity.max()
            part[~self._mf.in_use()] = -np.inf
            in_use = np.flatnonzero(np.isfinite(part))
            if len(in_use) > _CANDIDATES:
                order = np.argpartition(-part[in_use], _CANDIDATES)
                top, beyond = in_use[order[:_CANDIDATES]], float(part[in_use[order[_CANDIDATES]]])
            else:
                top, beyond = in_use, -np.inf
            self._shared = (self._mf.updates, (part, top, beyond))
        return self._shared[1]

    def recommend_user(self, user_id: str, k: int) -> list[Scored]:
        return self.recommend_users([user_id], k)[0]

    def recommend_users(self, user_ids: Sequence[str], k: int) -> list[list[Scored]]:
        """Lists for many users, ranked first among candidates: the most popular items and their own.

        Any other item scores at most the largest popularity part outside the candidates plus
        ``mf_weight`` (the MF part is scaled to [0, 1]; it has no history part): a list whose k-th
        score is above that is exact. The rare user whose list is not is ranked over every item.
        """
        lists: list[list[Scored]] = [[] for _ in user_ids]
        ids = self._mf.item_index.ids
        _, top, beyond = self._shared_parts()
        bound = beyond + max(self.mf_weight, 0.0)  # the MF part lies between 0 and mf_weight
        for start in range(0, len(user_ids), _CHUNK_USERS):
            chunk = user_ids[start : start + _CHUNK_USERS]
            with_history = [i for i, user_id in enumerate(chunk) if user_id in self._histories]
            own = [self._own_rows(chunk[i]) for i in with_history]
            rows = np.union1d(top, np.fromiter((row for rows in own for row in rows), dtype=np.int64))
            positions, scores = self._blend(chunk, with_history, own, rows)
            unsure = []
            for i, row, best in zip(positions, scores, top_k_rows(scores, k), strict=True):
                if (len(best) == k and row[best[-1]] > bound) or bound == -np.inf:
                    lists[start + i] = list(zip(ids(rows[best]), row[best].tolist(), strict=True))
                else:
                    unsure.append(i)
            if unsure:  # known to both parts, and their history rows at hand: ranked over every item
                own_of = dict(zip(with_history, own, strict=True))
                users, histories = [chunk[i] for i in unsure], [own_of[i] for i in unsure]
                _, scores = self._blend(users, list(range(len(users))), histories, None)
                for i, row, best in zip(unsure, scores, top_k_rows(scores, k), strict=True):
                    lists[start + i] = list(zip(ids(best), row[best].tolist(), strict=True))
        return lists

    def size(self) -> dict[str, int]:
        return {**self._mf.size(), "histories": len(self._histories)}

    def evictions(self) -> dict[str, int]:
        return {**self._mf.evictions(), "histories": self._evicted_histories}
