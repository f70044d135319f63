"""The interfaces every online model implements, so the worker and the evaluator drive them alike.

All models learn from one :class:`~shopstream.models.events.Event` at a time (``learn_one``) and
serve a ranked list of ``(item_id, score)`` pairs. Serving never changes what a model knows: an
unknown user, session or item gives an empty list, never a silent insertion.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import ClassVar

from shopstream.models.events import Event

Scored = tuple[str, float]

#: How strongly each event type says "this user wants this item"; impressions are exposure, not
#: interest, and a removal from the cart is a mild negative.
DEFAULT_EVENT_WEIGHTS: Mapping[str, float] = {
    "view": 1.0,
    "add_to_cart": 3.0,
    "remove_from_cart": -1.0,
    "purchase": 5.0,
    "impression": 0.0,
}


class Model(ABC):
    """Something that learns online, one event at a time, and can tell how much state it holds."""

    name: ClassVar[str]
    #: Whether serving leaves later answers exactly as if it had not happened. A model with a serving cache
    #: that tolerates some staleness (``ItemTransitions``' vote cache) sets False; tests hold the rest to it.
    exact_serving: ClassVar[bool] = True

    @abstractmethod
    def learn_one(self, event: Event) -> None:
        """Update the model with one event; must be cheap (microseconds)."""

    def learn_many(self, events: Iterable[Event]) -> None:
        """Learn a batch in order; models override this when they can vectorise it."""
        for event in events:
            self.learn_one(event)

    def uncached(self) -> AbstractContextManager[None]:
        """Serve, inside this context, as if the model had no serving cache (reading none, filling none): answers
        that depend on what was learned only, not on when the model served before. Nothing to do where serving
        is exact."""
        return nullcontext()

    def size(self) -> dict[str, int]:
        """Entities held, by kind (``users``, ``items``, ``sessions``), for memory metrics."""
        return {}

    def evictions(self) -> dict[str, int]:
        """Entities dropped so far because a cap was full, by kind; steady growth means a cap is too small."""
        return {}


class SessionRecommender(Model):
    """Predicts the next items of a session from its prefix."""

    @abstractmethod
    def recommend_session(self, session_id: str, k: int) -> list[Scored]:
        """Top-k next items for the session; empty if the session is unknown."""

    def recommend_sessions(self, session_ids: Sequence[str], k: int) -> list[list[Scored]]:
        """The lists of many sessions at once; models override this when they can build them together."""
        return [self.recommend_session(session_id, k) for session_id in session_ids]


class UserRecommender(Model):
    """Ranks items for a known user from their history."""

    @abstractmethod
    def recommend_user(self, user_id: str, k: int) -> list[Scored]:
        """Top-k items for the user; empty if the user is unknown (callers fall back)."""

    def recommend_users(self, user_ids: Sequence[str], k: int) -> list[list[Scored]]:
        """The lists of many users at once; models override this when they can score them together."""
        return [self.recommend_user(user_id, k) for user_id in user_ids]


class ItemRecommender(Model):
    """Items similar to a given item."""

    @abstractmethod
    def similar_items(self, item_id: str, k: int) -> list[Scored]:
        """Top-k items related to ``item_id``, excluding itself; empty if unknown."""


class GlobalRecommender(Model):
    """The same list for everyone (trending), optionally per category."""

    @abstractmethod
    def top(self, k: int, category: str | None = None) -> list[Scored]:
        """Top-k items overall, or within ``category``."""
