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

from shopstream.models.bounded import ExpiringDict
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


@dataclass(frozen=True, slots=True)
class Learners:
    """Who learns a batch, each part a callable learning a run of events in order: ``session``, what session
    lists are built from; ``user``, what user lists are built from besides; ``rest``, what no scored list reads.
    A part is brought up to a scored event only when that event's lists read it."""

    session: Callable[[Sequence[Event]], None]
    user: Callable[[Sequence[Event]], None]
    rest: Callable[[Sequence[Event]], None]


class PrequentialScorer:
    """Learns a batch through the caller's :class:`Learners`, stopping before each scored event to score it.

    The sample is of sessions: a positive event of a sampled session is scored for its session when the
    session has a list (an event of it other than an impression was learned within ``session_ttl_s`` of event
    time: the lists the worker writes after a batch) and ``owns`` the session's id, and for its user when it
    names one that ``owns`` the user's id (the lists say whether the user has one).

    Parameters
    ----------
    share
        Share of sessions scored, in [0, 1]; 0 scores nothing.
    session_ttl_s, max_sessions
        The stack's session lifetime and cap, which bound the sampled sessions remembered.
    ks
        The K of HR@K and MRR@K.

    Examples
    --------
    >>> from shopstream.models.events import Event
    >>> learned = []
    >>> def lists(event, session, user, now):
    ...     return [("session", ("seen", list(learned)))]  # the items learned so far, newest last
    >>> learners = Learners(session=lambda run: learned.extend(e.item_id for e in run), user=len, rest=len)
    >>> scorer = PrequentialScorer(share=1.0)
    >>> batch = [Event(f"e{i}", 1e9 + i, "s1", "view", item) for i, item in enumerate("aab")]
    >>> scorer.learn(batch, lambda key: True, learners, lists)
    >>> learned, [(d.model, d.k, d.hits, d.predictions) for d in scorer.scores.drain()]
    (['a', 'a', 'b'], [('session:seen', 10, 1, 2), ('session:seen', 20, 1, 2)])
    """

    def __init__(
        self,
        share: float = 1.0,
        session_ttl_s: float = 1800.0,
        max_sessions: int = 200_000,
        ks: tuple[int, ...] = (10, 20),
    ) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError("share must be in [0, 1]")
        self.share = share
        self.scores = OnlineScores(ks)
        self._sessions: ExpiringDict[str, bool] = ExpiringDict(max_sessions, session_ttl_s)
        self._now = -math.inf  # the latest event time learned

    def learn(
        self, events: Sequence[Event], owns: Callable[[str], bool], learners: Learners, lists: ListsBefore
    ) -> None:
        """Learn ``events`` in order, the parts a scored event's lists read brought up to just before it."""
        session_at = user_at = 0  # how far the session and user parts have learned the batch
        share, sessions = self.share, self._sessions
        for i, event in enumerate(events):
            self._now = now = max(self._now, event.ts)
            if event.type == "impression" or share <= 0.0:  # an impression changes no list
                continue
            session_id, user_id = event.session_id, event.user_id
            if not (share >= 1.0 or in_sample(session_id, share)):
                continue
            if event.type in POSITIVE_TYPES:
                session = sessions.peek_fresh(session_id, now) is not None and owns(session_id)
                user = user_id is not None and owns(user_id)
                if session or user:
                    if session_at < i:
                        learners.session(events[session_at:i])
                        session_at = i
                    if user and user_at < i:
                        learners.user(events[user_at:i])
                        user_at = i
                    for surface, shown in lists(event, session, user, now):
                        if shown is not None:
                            self.scores.record(f"{surface}:{shown[0]}", shown[1], event.item_id)
            sessions.set(session_id, True, now)
        for learn, start in ((learners.session, session_at), (learners.user, user_at), (learners.rest, 0)):
            if start < len(events):
                learn(events[start:])
        sessions.expire(self._now)
