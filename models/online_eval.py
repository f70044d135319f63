"""Prequential scoring of the served surfaces: was the item a shopper acted on in the list they were shown?

Each scored positive event (view, add-to-cart, purchase) is checked against the list its session, and its
user, would be shown just before it: built by the stack's own list builders from the models as they stand
after every earlier event and before this one (predict, then learn). A batch's learning is therefore split
at its scored events, so the figure is a function of the event stream alone: the same whether the events
came one at a time or 5,000 to a batch, and K workers, each counting the keys it owns, add up to one.
Scoring against the list last written instead would score a catch-up batch's clicks against lists that
miss the session's earlier clicks of the same batch.

Every scored event costs a list build and a learning step more per model, so a deterministic sample of
sessions and users is scored (a hash of the id, unrelated to the key slots: :func:`in_sample`). The
worker exports the counts, so ``rate(hits) / rate(predictions)`` in Prometheus is the live hit-rate.

>>> scores = OnlineScores(ks=(1, 3))
>>> scores.record("knn", ["a", "b", "c"], "b")
>>> scores.record("knn", ["a", "b", "c"], "z")
>>> [(s.model, s.k, s.hits, s.predictions, round(s.rr_sum, 2)) for s in scores.drain()]
[('knn', 1, 0, 2, 0.0), ('knn', 3, 1, 2, 0.5)]
>>> scores.drain()
[]
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shopstream.models.bounded import ExpiringDict, LRUDict
from shopstream.models.events import Event
from shopstream.models.transitions import POSITIVE_TYPES

#: A list as scored: the model that made it and its items, best first.
Shown = tuple[str, list[str]]
#: What the stack would show the event's session and user now, for the surfaces asked (True: scored), in
#: ``(surface, list or None)`` pairs; called between two learning steps, it must change nothing.
ListsBefore = Callable[[Event, bool, bool, float], list[tuple[str, Shown | None]]]


def in_sample(key_id: str, share: float) -> bool:
    """Whether a session or user id is scored: BLAKE2b of the id, the same in every process, and
    independent of the slot (CRC-32 of the id) that decides which worker counts it.

    >>> in_sample("s1", 1.0), in_sample("s1", 0.0), in_sample("s1", 0.5) == in_sample("s1", 0.5)
    (True, False, True)
    """
    if share >= 1.0:
        return True
    digest = hashlib.blake2b(key_id.encode(), digest_size=8, person=b"hit-rate").digest()
    return int.from_bytes(digest, "big") < share * 2**64


@dataclass(slots=True)
class ScoreDelta:
    """Counts since the last drain for one (model, K); ``rr_sum`` adds 1/rank of hits within K."""

    model: str
    k: int
    hits: int
    predictions: int
    rr_sum: float


class OnlineScores:
    """Accumulates hits and reciprocal ranks at several K per model, drained by the exporter."""

    def __init__(self, ks: tuple[int, ...] = (10, 20)) -> None:
        self.ks = tuple(sorted(ks))
        self._counts: dict[str, list[float]] = {}  # a plain dict, so checkpoints can pickle it

    def record(self, model: str, served: list[str], item_id: str) -> None:
        counts = self._counts.get(model)
        if counts is None:
            counts = self._counts[model] = [0.0] * (2 * len(self.ks) + 1)
        counts[0] += 1
        try:
            rank = served.index(item_id, 0, self.ks[-1]) + 1
        except ValueError:
            return
        for i, k in enumerate(self.ks):
            if rank <= k:
                counts[1 + 2 * i] += 1
                counts[2 + 2 * i] += 1.0 / rank

    def drain(self) -> list[ScoreDelta]:
        deltas = [
            ScoreDelta(model, k, int(counts[1 + 2 * i]), int(counts[0]), counts[2 + 2 * i])
            for model, counts in sorted(self._counts.items())
            for i, k in enumerate(self.ks)
        ]
        self._counts.clear()
        return deltas


class PrequentialScorer:
    """Learns a batch through a caller's ``learn``, stopping before each scored event to score it.

    A session has a list once an event of it other than an impression was learned within ``session_ttl_s``
    (event time), a user once any such event named them: the lists the worker writes after a batch. An
    event is scored for its session (its user) when that is in the sample, has a list, and ``owns`` its id.

    Parameters
    ----------
    share
        Share of sessions and of users scored, in (0, 1].
    session_ttl_s, max_sessions, max_users
        The stack's session lifetime and caps, which bound the sampled sessions and users remembered.
    ks
        The K of HR@K and MRR@K.

    Examples
    --------
    >>> from shopstream.models.events import Event
    >>> learned = []
    >>> def lists(event, session, user, now):
    ...     return [("session", ("seen", list(learned)))]  # the items learned so far, newest last
    >>> scorer = PrequentialScorer(share=1.0)
    >>> batch = [Event(f"e{i}", 1e9 + i, "s1", "view", item) for i, item in enumerate("aab")]
    >>> scorer.learn(batch, lambda key: True, lambda events: learned.extend(e.item_id for e in events), lists)
    >>> learned, [(d.model, d.k, d.hits, d.predictions) for d in scorer.scores.drain()]
    (['a', 'a', 'b'], [('session:seen', 10, 1, 2), ('session:seen', 20, 1, 2)])
    """

    def __init__(
        self,
        share: float = 1.0,
        session_ttl_s: float = 1800.0,
        max_sessions: int = 200_000,
        max_users: int = 200_000,
        ks: tuple[int, ...] = (10, 20),
    ) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError("share must be in (0, 1]")
        self.share = share
        self.scores = OnlineScores(ks)
        self._sessions: ExpiringDict[str, bool] = ExpiringDict(max_sessions, session_ttl_s)
        self._users: LRUDict[str, bool] = LRUDict(max_users)
        self._now = -math.inf  # the latest event time learned

    def learn(
        self, events: Sequence[Event], owns: Callable[[str], bool], learn: Callable[[Sequence[Event]], None],
        lists: ListsBefore,
    ) -> None:
        """Learn ``events`` in order through ``learn``, in runs that end before each scored event, and score
        it against ``lists``."""
        start = 0
        share, sessions, users = self.share, self._sessions, self._users
        for i, event in enumerate(events):
            self._now = now = max(self._now, event.ts)
            if event.type == "impression":  # changes no list
                continue
            session_id, user_id = event.session_id, event.user_id
            session = share >= 1.0 or in_sample(session_id, share)
            user = user_id is not None and (share >= 1.0 or in_sample(user_id, share))
            if event.type in POSITIVE_TYPES:
                scored_session = session and sessions.peek_fresh(session_id, now) is not None and owns(session_id)
                scored_user = user and user_id in users and owns(user_id)  # type: ignore[arg-type]
                if scored_session or scored_user:
                    if i > start:
                        learn(events[start:i])
                        start = i
                    for surface, shown in lists(event, scored_session, scored_user, now):
                        if shown is not None:
                            self.scores.record(f"{surface}:{shown[0]}", shown[1], event.item_id)
            if session:
                sessions.set(session_id, True, now)
            if user:
                users[user_id] = True  # type: ignore[index]
        if start < len(events):
            learn(events[start:])
        sessions.expire(self._now)
