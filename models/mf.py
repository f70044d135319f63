"""Incremental implicit-feedback matrix factorisation: River's ``FunkMF`` SGD step, vectorised over a batch.

River's ``FunkMF`` learns one (user, item, target) pair at a time through dicts of factor vectors,
and ranking a user against the catalogue would call ``predict_one`` per item.
Here the same squared-loss SGD step with L2 (``learn_one`` is exactly River's update, which a unit
test checks against ``river.reco.FunkMF``) runs on dense NumPy matrices, and ``learn_many`` learns a
batch's pairs one by one in one compiled pass (:mod:`~shopstream.models.mf_kernel`). Scoring users
against the catalogue is one matrix product for all of them, and top-k an ``argpartition``. Users and
items are capped (least recently learned first out, rows reused).
"""

from __future__ import annotations

import math
import random
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from shopstream.models.base import DEFAULT_EVENT_WEIGHTS, Scored, UserRecommender
from shopstream.models.events import Event
from shopstream.models.item_index import ItemIndex, PicklesUsedRows, top_k
from shopstream.models.mf_kernel import sgd_pairs

#: Recent positives kept to draw negatives from: a uniform draw from the stream of positives is a
#: draw from the (recent) popularity distribution, in O(1) instead of O(catalogue).
_NEGATIVE_POOL = 20_000
_MAX_EXPONENT = 50.0


class ImplicitMF(PicklesUsedRows, UserRecommender):
    """Matrix factorisation on implicit feedback with popularity-sampled negatives.

    Each positive event is learned with its event-type weight, scaled so the largest is 1, as the
    target (bounded targets keep SGD stable whatever the weights' unit) and ``n_negatives``
    items drawn from recent positives (so, proportionally to popularity) as target 0, which keeps
    popular items from scoring high for everyone merely because they are seen often.

    Parameters
    ----------
    n_factors
        Latent dimensions.
    lr
        SGD learning rate (plain SGD keeps no per-entity optimiser state, so eviction is complete).
    l2
        L2 penalty on the factors.
    init_sigma
        Standard deviation of the normal draw that initialises a new user's or item's factors.
    n_negatives
        Sampled negatives per positive event.
    event_weights
        Target per event type; defaults to ``DEFAULT_EVENT_WEIGHTS``. Types weighted 0 are ignored,
        negative weights are learned as a negative target without sampling.
    exclude_purchased
        Never recommend an item the user already bought.
    popularity_half_life_s
        Half-life of the decayed item popularity exposed by :meth:`popularity` (for blends).
    max_users
        Users kept; the least recently active are forgotten.
    max_items
        Items kept; the least recently learned are forgotten and their matrix rows reused.
    max_history
        Purchased items remembered per user for the exclusion.
    seed
        Seeds the factor initialisation and the negative sampling.

    Examples
    --------
    >>> from shopstream.models.events import Event
    >>> model = ImplicitMF(n_factors=8, seed=1)
    >>> for i in range(300):
    ...     user, item = ("u1", "a") if i % 2 else ("u2", "b")
    ...     model.learn_one(Event(f"e{i}", 1e9 + i, "s", "purchase", item, user_id=user))
    >>> [item for item, _ in model.recommend_user("u1", 1)], model.recommend_user("nobody", 5)
    (['a'], [])
    >>> model.size()
    {'users': 2, 'items': 2}
    """

    name = "implicit_mf"

    _row_arrays = (("_user_factors", "user_index"), ("_factors", "item_index"), ("_popularity", "item_index"),
                   ("_in_use", "item_index"))

    def __init__(
        self,
        n_factors: int = 32,
        lr: float = 0.05,
        l2: float = 0.01,
        init_sigma: float = 0.1,
        n_negatives: int = 4,
        event_weights: Mapping[str, float] | None = None,
        exclude_purchased: bool = False,
        popularity_half_life_s: float = 3 * 86400.0,
        max_users: int = 1_000_000,
        max_items: int = 100_000,
        max_history: int = 200,
        seed: int | None = None,
    ) -> None:
        self.n_factors = n_factors
        self.lr = lr
        self.l2 = l2
        self.init_sigma = init_sigma
        self.n_negatives = n_negatives
        self.event_weights = event_weights
        self.exclude_purchased = exclude_purchased
        self.popularity_half_life_s = popularity_half_life_s
        self.max_users = max_users
        self.max_items = max_items
        self.max_history = max_history
        self.seed = seed

        weights = DEFAULT_EVENT_WEIGHTS if event_weights is None else event_weights
        top = max(weights.values())
        self._targets = {kind: weight / top for kind, weight in weights.items()}
        self._rng = random.Random(seed)
        self._init_rng = np.random.default_rng(seed)
        # user -> (factor row, items they bought: an insertion-ordered dict as a bounded ordered set);
        # both OrderedDicts are in recency order, the least recently learned first out
        self._users: OrderedDict[str, tuple[int, dict[str, None]]] = OrderedDict()
        self._items: OrderedDict[str, int] = OrderedDict()
        self._evicted: Counter[str] = Counter()
        self.user_index = ItemIndex(max_users)
        self.item_index = ItemIndex(max_items)
        # float32 halves memory and the mat-vec; zeros are committed by the OS only as rows are used
        self._user_factors = np.zeros((max_users, n_factors), dtype=np.float32)
        self._factors = np.zeros((max_items, n_factors), dtype=np.float32)
        self._popularity = np.zeros(max_items)
        self._in_use = np.zeros(max_items, dtype=bool)
        self._n_rows = 0  # rows ever assigned: serving only scores ``[:n_rows]``, not the capacity
        self._pool: deque[str] = deque(maxlen=_NEGATIVE_POOL)
        self._tau = popularity_half_life_s / math.log(2)
        self._t_ref: float | None = None
        # (user row, item row, target) of the pairs of the batch being learned, in stream order
        self._pairs: list[tuple[int, int, float]] = []
        self.updates = 0  # learning steps taken: lets callers reuse what they derived from the factors

    # -- learning ---------------------------------------------------------------------------------

    def learn_one(self, event: Event) -> None:
        self.learn_many((event,))

    def learn_many(self, events: Iterable[Event]) -> None:
        """Collect the batch's pairs (positives and sampled negatives), then learn them in stream order."""
        for event in events:
            target = self._targets.get(event.type, 0.0)
            if event.user_id is None or target == 0.0:
                continue
            user_row, history = self._touch_user(event.user_id)
            row = self._touch_item(event.item_id)
            self._pairs.append((user_row, row, target))
            if target < 0:
                continue
            if event.type == "purchase" and self.max_history:
                history.pop(event.item_id, None)
                history[event.item_id] = None
                if len(history) > self.max_history:
                    del history[next(iter(history))]
            self._add_popularity(row, target, event.ts)
            for _ in range(self.n_negatives if self._pool else 0):
                negative = self._pool[self._rng.randrange(len(self._pool))]
                negative_row = self.item_index.get(negative)
                if negative != event.item_id and negative_row is not None:
                    self._pairs.append((user_row, negative_row, 0.0))
            self._pool.append(event.item_id)
        self._step()

    def _step(self) -> None:
        """SGD on squared loss with L2 over the pending pairs, in stream order."""
        if not self._pairs:
            return
        pairs = np.array(self._pairs)
        self._pairs.clear()
        self.updates += 1
        users, items = pairs[:, 0].astype(np.intp), pairs[:, 1].astype(np.intp)
        sgd_pairs(self._user_factors, self._factors, users, items, pairs[:, 2], self.lr, self.l2)

    def _new_factors(self) -> np.ndarray:
        return self._init_rng.normal(0.0, self.init_sigma, self.n_factors).astype(np.float32)

    def _touch_user(self, user: str) -> tuple[int, dict[str, None]]:
        known = self._users.get(user)
        if known is not None:
            self._users.move_to_end(user)
            return known
        if self.user_index.full:
            self._step()  # pending pairs may name the row about to be reused
            old, _ = self._users.popitem(last=False)
            self.user_index.remove(old)
            self._evicted["users"] += 1
        row = self.user_index.add(user)
        self._user_factors[row] = self._new_factors()
        known = self._users[user] = (row, {})
        return known

    def _touch_item(self, item: str) -> int:
        row = self._items.get(item)
        if row is not None:
            self._items.move_to_end(item)
            return row
        if self.item_index.full:
            self._step()
            old, old_row = self._items.popitem(last=False)
            self._evicted["items"] += 1
            self.item_index.remove(old)
            self._in_use[old_row] = False
        row = self._items[item] = self.item_index.add(item)
        self._factors[row] = self._new_factors()
        self._popularity[row] = 0.0
        self._in_use[row] = True
        self._n_rows = max(self._n_rows, row + 1)
        return row

    def _add_popularity(self, row: int, weight: float, ts: float) -> None:
        """Forward decay: add ``w * exp((t - t_ref) / tau)`` and rescale only when it would overflow."""
        if self._t_ref is None:
            self._t_ref = ts
        if (ts - self._t_ref) / self._tau > _MAX_EXPONENT:
            self._popularity *= math.exp((self._t_ref - ts) / self._tau)
            self._t_ref = ts
        self._popularity[row] += weight * math.exp((ts - self._t_ref) / self._tau)

    # -- serving ----------------------------------------------------------------------------------

    def knows(self, user_id: str) -> bool:
        return user_id in self._users

    def item_scores(self, user_id: str) -> np.ndarray | None:
        """Predicted preference of a known user per item row (``item_index``); unused rows ``-inf``."""
        known, scores = self.item_scores_many([user_id])
        return scores[0] if known else None

    def item_scores_many(self, user_ids: Sequence[str]) -> tuple[list[int], np.ndarray]:
        """:meth:`item_scores` of the known ones among ``user_ids`` in one matrix product: their positions in
        ``user_ids``, and one row of scores each."""
        known = [i for i, user_id in enumerate(user_ids) if user_id in self._users]
        n = self._n_rows
        users = self._user_factors[[self._users[user_ids[i]][0] for i in known]]
        scores = (users @ self._factors[:n].T).astype(np.float64)
        scores[:, ~self._in_use[:n]] = -np.inf
        return known, scores

    def in_use(self) -> np.ndarray:
        """Which item rows currently hold an item."""
        return self._in_use[: self._n_rows]

    def popularity(self) -> np.ndarray:
        """Decayed popularity per item row, up to a common positive factor (0 for unused rows)."""
        return self._popularity[: self._n_rows]

    def purchased(self, user_id: str) -> list[str]:
        """Items the user bought, oldest first (at most ``max_history``), without refreshing recency."""
        known = self._users.get(user_id)
        return [] if known is None else list(known[1])

    def recommend_user(self, user_id: str, k: int) -> list[Scored]:
        scores = self.item_scores(user_id)
        if scores is None:
            return []
        if self.exclude_purchased:
            rows = [self.item_index.get(item) for item in self.purchased(user_id)]
            scores[[row for row in rows if row is not None]] = -np.inf
        rows = top_k(scores, k)
        return list(zip(self.item_index.ids(rows), scores[rows].tolist(), strict=True))

    def size(self) -> dict[str, int]:
        return {"users": len(self._users), "items": len(self.item_index)}

    def evictions(self) -> dict[str, int]:
        return dict(self._evicted)

