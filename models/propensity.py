"""Online purchase propensity of open sessions: will this visit end in a purchase?

Labels arrive late: a session is positive when it converts and negative when it goes quiet for
``timeout_s``. Each session keeps its last few feature snapshots, and all of them are learned with
the label once it is known, so the model sees sessions at every stage, as it scores them.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from river import base, compose, linear_model, optim, preprocessing

from shopstream.models.base import Model
from shopstream.models.events import Event
from shopstream.models.propensity_kernel import learn_rows


@dataclass(slots=True)
class _Session:
    start: float
    last: float
    views: int = 0
    carts: int = 0
    removals: int = 0
    events: int = 0
    items: set[str] = field(default_factory=set)
    cart_value: float = 0.0
    gap: float = 0.0  # seconds between the last two events
    snapshots: deque[tuple[float, ...]] = field(default_factory=deque)

    def snapshot(self) -> tuple[float, ...]:
        """The raw features now, as a tuple: cheap on every event; :func:`_features` names them when learned."""
        return (self.views, self.carts, self.removals, self.events, len(self.items), self.last - self.start,
                self.cart_value, self.gap)


#: The features of :func:`_features`, in its order; the last three are ``log1p`` of the snapshot's values.
FEATURES = ("views", "carts", "removals", "events", "distinct_items", "log_duration_s", "log_cart_value", "log_gap_s")
_LOGGED = slice(5, 8)


def _features(snapshot: tuple[float, ...]) -> dict[str, float]:
    views, carts, removals, events, distinct, duration, cart_value, gap = snapshot
    return {
        "views": float(views),
        "carts": float(carts),
        "removals": float(removals),
        "events": float(events),
        "distinct_items": float(distinct),
        "log_duration_s": math.log1p(duration),
        "log_cart_value": math.log1p(cart_value),
        "log_gap_s": math.log1p(gap),
    }


def _rows(snapshots: Sequence[tuple[float, ...]]) -> np.ndarray:
    """Snapshots as the pipeline's feature rows, in ``FEATURES`` order (what :func:`_features` gives, as a
    matrix); a snapshot with a value out of range gets a non-finite row."""
    x = np.array(snapshots, dtype=np.float64).reshape(len(snapshots), len(FEATURES))
    with np.errstate(invalid="ignore", divide="ignore"):
        x[:, _LOGGED] = np.log1p(x[:, _LOGGED])
    return x


def _finite(features: dict[str, float]) -> bool:
    return all(math.isfinite(value) for value in features.values())


class SessionPropensity(Model):
    """P(session ends in a purchase) from session features, learned online with delayed labels.

    Parameters
    ----------
    classifier
        A River binary classifier; defaults to ``StandardScaler | LogisticRegression(SGD(0.05))``.
    timeout_s
        A session quiet for this long is over and, without a purchase, labelled negative.
    max_sessions
        Open sessions kept; beyond it the least recently active is closed early (as a negative).
    max_snapshots
        Feature snapshots kept per session and learned at labelling.
    max_items
        Distinct items remembered per session (the count saturates there).

    Examples
    --------
    >>> from shopstream.models.events import Event
    >>> model = SessionPropensity(timeout_s=60)
    >>> t = 0.0
    >>> for n in range(200):
    ...     kind = ["view", "add_to_cart", "purchase"] if n % 2 else ["view", "view"]
    ...     for i, etype in enumerate(kind):
    ...         t += 1
    ...         model.learn_one(Event(f"e{n}{i}", 1e9 + t, f"s{n}", etype, "a", price=2.0))
    ...     t += 100
    >>> for i, (session, etype) in enumerate([("buyer", "view"), ("buyer", "add_to_cart"),
    ...                                       ("browser", "view"), ("browser", "view")]):
    ...     model.learn_one(Event(f"x{i}", 1e9 + t + i, session, etype, "a", price=2.0))
    >>> model.predict_session("buyer") > 0.5 > model.predict_session("browser")
    True
    >>> model.predict_session("unknown") is None
    True
    """

    name = "session_propensity"

    def __init__(
        self,
        classifier: base.Classifier | None = None,
        timeout_s: float = 1800.0,
        max_sessions: int = 100_000,
        max_snapshots: int = 8,
        max_items: int = 100,
    ) -> None:
        self.classifier = classifier
        self.timeout_s = timeout_s
        self.max_sessions = max_sessions
        self.max_snapshots = max_snapshots
        self.max_items = max_items

        self._model = (
            compose.Pipeline(
                preprocessing.StandardScaler(), linear_model.LogisticRegression(optim.SGD(0.05))
            )
            if classifier is None
            else classifier.clone()
        )
        self._sessions: OrderedDict[str, _Session] = OrderedDict()  # activity order
        self._evicted_sessions = 0
        # The front session's timeout: no session is checked before then, unless the front itself moves
        # (touched, bought, evicted), which is when the old per-event check would have seen another front.
        self._next_expiry = -math.inf
        self._front: str | None = None
        self.labelled = Counter[bool]()
        # Snapshots labelled in the current batch, learned at its end by the default pipeline (_learn_labelled).
        self._labelled_rows: list[tuple[float, ...]] = []  # raw snapshots
        self._labels: list[bool] = []

    def learn_one(self, event: Event) -> None:
        self.learn_many((event,))

    def learn_many(self, events: Iterable[Event]) -> None:
        """Learn in order; the snapshots of the sessions the batch labels are learned together at its end (in
        the order they were labelled, as one by one: no prediction is made in between)."""
        for event in events:
            self._learn(event)
        self._learn_labelled()

    def _learn(self, event: Event) -> None:
        if event.ts >= self._next_expiry:
            self._expire(event.ts)
        session = self._sessions.get(event.session_id)
        if session is not None:
            self._sessions.move_to_end(event.session_id)
            if event.session_id == self._front:
                self._next_expiry = -math.inf
        if event.type == "purchase":
            if session is not None:
                del self._sessions[event.session_id]
                self._label(session, True)
            return
        if session is None:
            if len(self._sessions) >= self.max_sessions:
                self._next_expiry = -math.inf
                _, oldest = self._sessions.popitem(last=False)
                self._evicted_sessions += 1
                self._label(oldest, False)
            session = self._sessions[event.session_id] = _Session(event.ts, event.ts)
        session.gap, session.last = max(0.0, event.ts - session.last), max(session.last, event.ts)
        session.events += 1
        if event.type == "view":
            session.views += 1
        if len(session.items) < self.max_items:
            session.items.add(event.item_id)
        price = (event.price or 0.0) * (event.quantity or 1)
        if event.type == "add_to_cart":
            session.carts += 1
            session.cart_value += price
        elif event.type == "remove_from_cart":
            session.removals += 1
            session.cart_value = max(0.0, session.cart_value - price)
        session.snapshots.append(session.snapshot())
        if len(session.snapshots) > self.max_snapshots:
            session.snapshots.popleft()

    def _expire(self, now: float) -> None:
        """Sessions are in activity order, so expired ones are all at the front."""
        while self._sessions:
            self._front, session = next(iter(self._sessions.items()))
            if now - session.last < self.timeout_s:
                self._next_expiry = session.last + self.timeout_s
                return
            self._sessions.popitem(last=False)
            self._label(session, False)
        self._front, self._next_expiry = None, -math.inf

    def _label(self, session: _Session, converted: bool) -> None:
        if self.classifier is None:  # learned at the batch's end (_learn_labelled)
            self._labelled_rows += session.snapshots
            self._labels += [converted] * len(session.snapshots)
        else:
            for snapshot in session.snapshots:
                features = _features(snapshot)
                if _finite(features):  # one infinite feature would turn every weight, so every score, NaN
                    self._model.learn_one(features, converted)
        self.labelled[converted] += 1

    def _learn_labelled(self) -> None:
        """The default pipeline learns the rows labelled since the last call in one compiled pass, its state read
        from and written back to River's scaler and regression (models/propensity_kernel.py)."""
        if not self._labels:
            return
        x, y = _rows(self._labelled_rows), np.array(self._labels, dtype=np.bool_)
        self._labelled_rows, self._labels = [], []
        finite = np.isfinite(x).all(axis=1)  # one infinite feature would turn every weight, so every score, NaN
        x, y = x[finite], y[finite]
        if not len(y):
            return
        scaler, regression, means, variances, weights = self._river_state()
        counts = np.array([scaler.counts.get(name, 0) for name in FEATURES], dtype=np.float64)
        intercept = np.array([regression.intercept])
        learn_rows(x, y, counts, means, variances, weights, intercept, regression.optimizer.learning_rate,
                   regression.intercept_lr.get(regression.optimizer.n_iterations), regression.clip_gradient)
        for name, count, mean, variance, weight in zip(
            FEATURES, counts.tolist(), means.tolist(), variances.tolist(), weights.tolist(), strict=True
        ):
            scaler.counts[name], scaler.means[name], scaler.vars[name] = int(count), mean, variance
            regression._weights[name] = weight
        regression.intercept = float(intercept[0])
        regression.optimizer.n_iterations += len(y)

    def predict_session(self, session_id: str) -> float | None:
        """P(the open session converts) given everything seen so far; None if it is not open."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        snapshot = session.snapshots[-1] if session.snapshots else session.snapshot()  # as last learned
        features = _features(snapshot)
        if not _finite(features):
            return None
        probability = self._model.predict_proba_one(features).get(True, 0.0)
        return probability if math.isfinite(probability) else None

    def predict_sessions(self, session_ids: Sequence[str]) -> list[float | None]:
        """:meth:`predict_session` of each session, the default classifier's in one vectorised pass: the
        scaler's means and variances and the regression's weights, as River holds them, applied to a matrix of
        the sessions' last snapshots (River's own ``mean_func`` maps logits to probabilities). A live step lists
        tens of sessions, and River's per-dict path was ~10 µs each. Another classifier is asked one by one."""
        if self.classifier is not None:
            return [self.predict_session(session_id) for session_id in session_ids]
        found = [self._sessions.get(session_id) for session_id in session_ids]
        rows = [i for i, session in enumerate(found) if session is not None]
        out: list[float | None] = [None] * len(session_ids)
        if not rows:
            return out
        x = _rows([(s.snapshots[-1] if s.snapshots else s.snapshot()) for s in (found[i] for i in rows)])
        _, regression, means, variances, coefficients = self._river_state()
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = np.where(variances > 0, (x - means) / np.sqrt(variances), 0.0)
            probabilities = regression.loss.mean_func((scaled * coefficients).sum(axis=1) + regression.intercept)
        usable = np.isfinite(x).all(axis=1) & np.isfinite(probabilities)
        for i, ok, probability in zip(rows, usable.tolist(), probabilities.tolist(), strict=True):
            if ok:
                out[i] = probability
        return out

    def _river_state(self) -> tuple[preprocessing.StandardScaler, linear_model.LogisticRegression, np.ndarray,
                                    np.ndarray, np.ndarray]:
        """The default pipeline's scaler and regression, and their means, variances and weights in ``FEATURES``
        order (0 for a feature not seen yet, as River's defaults)."""
        scaler, regression = self._model.steps.values()
        weights = regression.weights
        return (scaler, regression, *(np.array([held.get(name, 0.0) for name in FEATURES])
                                      for held in (scaler.means, scaler.vars, weights)))

    def size(self) -> dict[str, int]:
        return {"sessions": len(self._sessions)}

    def evictions(self) -> dict[str, int]:
        return {"sessions": self._evicted_sessions}
