"""Crediting clicks, add-to-carts and purchases to the served list that showed the item first.

The tracker names the list an item was shown in (an ``impression`` with a ``list`` field) and the list a
view came from (a click: a ``view`` with a ``list`` field); carts and purchases carry no list. This joins
them in event time, per session: a click or a conversion of an item is credited to the latest list of the
same session that showed (or led to) the item no longer than ``window_s`` before, once per kind of outcome
and showing. What comes out is one :class:`Outcome` per impression, click and credited conversion, keyed by
surface and strategy: the counts the metrics show and the rewards the bandit learns from.

State is bounded: at most ``max_sessions`` sessions (least recently active first out, and any session idle
for ``window_s``), each remembering its ``max_items`` most recently shown items.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shopstream.models.bounded import ExpiringDict, LRUDict
from shopstream.models.events import Event

#: The outcome kinds, in funnel order; ``impression`` is the trial, the others are rewards.
OUTCOME_KINDS = ("impression", "click", "add_to_cart", "purchase")
REWARD_KINDS = OUTCOME_KINDS[1:]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One impression, click or conversion credited to the list (surface and strategy) that showed the item.

    ``impression_id`` is the event id of the impression credited (None for a click whose impression was not
    recorded); ``propensity`` is what the list's payload said the strategy was chosen with."""

    kind: str
    surface: str
    strategy: str
    propensity: float | None
    impression_id: str | None


@dataclass(slots=True)
class _Shown:
    surface: str
    strategy: str
    propensity: float | None
    impression_id: str | None
    ts: float
    credited: set[str] = field(default_factory=set)


class Attribution:
    """The join of outcomes to impressions, one event at a time, in event time.

    Examples
    --------
    >>> from shopstream.models.events import ListRef
    >>> ref = ListRef("session", "vsknn", position=0, propensity=0.8)
    >>> join = Attribution(window_s=600)
    >>> [o.kind for o in join.learn_one(Event("e1", 100.0, "s1", "impression", "i1", list_ref=ref))]
    ['impression']
    >>> [(o.kind, o.strategy, o.impression_id) for o in join.learn_one(Event("e2", 130.0, "s1", "view", "i1",
    ...                                                                       list_ref=ref))]
    [('click', 'vsknn', 'e1')]
    >>> [(o.kind, o.strategy) for o in join.learn_one(Event("e3", 200.0, "s1", "add_to_cart", "i1"))]
    [('add_to_cart', 'vsknn')]
    >>> join.learn_one(Event("e4", 900.0, "s1", "purchase", "i1"))  # beyond the window
    []
    """

    def __init__(self, window_s: float = 1800.0, max_sessions: int = 200_000, max_items: int = 200) -> None:
        self.window_s = window_s
        self.max_items = max_items
        self._sessions: ExpiringDict[str, LRUDict[str, _Shown]] = ExpiringDict(max_sessions, window_s)

    def learn_one(self, event: Event) -> list[Outcome]:
        """The outcomes this event adds; events without a list that match no showing add none."""
        self._sessions.expire(event.ts)
        ref = event.list_ref
        if event.type == "impression":
            if ref is None:
                return []
            self._shown(event.session_id, event.ts)[event.item_id] = _Shown(
                ref.surface, ref.strategy, ref.propensity, event.event_id, event.ts
            )
            return [Outcome("impression", ref.surface, ref.strategy, ref.propensity, event.event_id)]
        if event.type == "view" and ref is not None:
            shown = self._match(event)
            if shown is None or (shown.surface, shown.strategy) != (ref.surface, ref.strategy):
                # Clicked without a recorded impression (or from another list): the click stands for it.
                shown = _Shown(ref.surface, ref.strategy, ref.propensity, None, event.ts)
                self._shown(event.session_id, event.ts)[event.item_id] = shown
            return self._credit(shown, "click")
        if event.type in ("add_to_cart", "purchase") and (shown := self._match(event)) is not None:
            return self._credit(shown, event.type)
        return []

    def _credit(self, shown: _Shown, kind: str) -> list[Outcome]:
        if kind in shown.credited:
            return []
        shown.credited.add(kind)
        return [Outcome(kind, shown.surface, shown.strategy, shown.propensity, shown.impression_id)]

    def _match(self, event: Event) -> _Shown | None:
        items = self._sessions.peek(event.session_id)
        shown = items.peek(event.item_id) if items is not None else None
        if shown is None or not 0.0 <= event.ts - shown.ts <= self.window_s:
            return None
        return shown

    def _shown(self, session_id: str, ts: float) -> LRUDict[str, _Shown]:
        """The session's shown items; the session's clock restarts (it expires ``window_s`` after this)."""
        items = self._sessions.peek(session_id)
        if items is None:
            items = LRUDict(self.max_items)
        self._sessions.set(session_id, items, ts)
        return items

    def size(self) -> dict[str, int]:
        return {"attribution_sessions": len(self._sessions)}

    def evictions(self) -> dict[str, int]:
        return {"attribution_sessions": self._sessions.evictions}
