"""Every kind of list the worker publishes, declared once: the Redis key contract in code.

The engine (which lists a batch touches and how often they are rewritten), the sinks (key names and TTLs),
the shop-side reader (key names, value version), the metrics (the ``kind`` label) and docs/redis-keys.md all
take the kinds from :data:`LISTS`, so serving a new kind of list is one entry here plus the model that fills it.
Standard library only: a shop back-end imports it without the worker's dependencies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The fields every stored value carries, whatever its kind.
COMMON_FIELDS = ("v", "model", "updated_at")
RANKED = ("items", "scores")
#: What a list by an experimented strategy carries beside its items: which strategy filled it, and the
#: probability it was chosen with (docs/redis-keys.md "Strategy and propensity").
CHOSEN = ("strategy", "propensity")
FORECAST = ("window_s", "forecast")


@dataclass(frozen=True, slots=True)
class ListSpec:
    """One kind of list: how its key is named, how long it lives, how often it may be rewritten, what it holds.

    ``key_template`` is relative to the key prefix; its one ``{placeholder}`` is the entity's id (shop-wide lists
    have none).
    ``ttl_setting`` and ``refresh_setting`` name worker settings (``SHOPSTREAM_<NAME>``); without a refresh
    setting a list is rewritten in every batch that touches it. ``payload`` lists the fields beside
    :data:`COMMON_FIELDS`; ``optional`` the ones present only when the model has them.

    >>> SESSION.key("shop1:", "s42"), TRENDING.key("", "all")
    ('shop1:rec:session:s42', 'rec:trending')
    """

    name: str
    key_template: str
    ttl_setting: str
    refresh_setting: str | None
    payload: tuple[str, ...]
    description: str
    optional: tuple[str, ...] = ()
    version: int = 1
    _head: str = field(init=False, repr=False, compare=False)
    _tail: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        head, brace, rest = self.key_template.partition("{")
        object.__setattr__(self, "_head", head)
        object.__setattr__(self, "_tail", rest.partition("}")[2] if brace else "")

    @property
    def per_entity(self) -> bool:
        return self._head != self.key_template

    @property
    def ranked(self) -> bool:
        """Whether the value holds ranked items (what the reader's fallback chain merges)."""
        return "items" in self.payload

    def key(self, prefix: str, entity_id: str) -> str:
        """The Redis key; ids are used verbatim (an id may contain ``:``)."""
        return f"{prefix}{self._head}{entity_id}{self._tail}" if self.per_entity else prefix + self._head


SESSION = ListSpec(
    "session", "rec:session:{session_id}", "ttl_session_s", None, (*RANKED, *CHOSEN),
    "next items for a browsing session, already topped up from category and global trending; by the strategy "
    "the session is assigned, with the probability it was assigned with",
    optional=("purchase_propensity",),
)
USER = ListSpec(
    "user", "rec:user:{user_id}", "ttl_user_s", "user_refresh_s", (*RANKED, *CHOSEN),
    "items for a signed-in user by the strategy the user is assigned (the user model, what the user's latest "
    "session is served, or trending), with the probability it was assigned with",
)
ITEM = ListSpec(
    "item", "rec:item:{item_id}", "ttl_item_s", "item_refresh_s", (*RANKED, *CHOSEN),
    'items that sessions viewed, carted or bought together with this item ("customers also viewed"), or what '
    "trends in its category; by the strategy drawn for this write of the key, with the probability it was drawn "
    "with; not topped up",
)
TRENDING = ListSpec(
    "trending", "rec:trending", "ttl_trending_s", "trending_refresh_s", RANKED,
    "global trending items (time-decayed popularity)",
)
CATEGORY = ListSpec(
    "category", "rec:trending:category:{category}", "ttl_trending_s", "trending_refresh_s", RANKED,
    "trending items within one category",
)
FORECAST_SHOP = ListSpec(
    "forecast_shop", "forecast:shop", "ttl_item_s", None, FORECAST, "units sold shop-wide in the next windows"
)
FORECAST_CATEGORY = ListSpec(
    "forecast_category", "forecast:category:{category}", "ttl_item_s", None, FORECAST, "units of the category"
)
FORECAST_ITEM = ListSpec("forecast_item", "forecast:item:{item_id}", "ttl_item_s", None, FORECAST, "units of the item")

#: Every kind, in the order docs/redis-keys.md lists them.
LISTS: tuple[ListSpec, ...] = (SESSION, USER, ITEM, TRENDING, CATEGORY, FORECAST_SHOP, FORECAST_CATEGORY, FORECAST_ITEM)
BY_NAME: Mapping[str, ListSpec] = {spec.name: spec for spec in LISTS}


@dataclass(slots=True)
class RecList:
    """One list to publish: ``kind`` names a :class:`ListSpec`; ``id`` is ``"all"`` for shop-wide kinds."""

    kind: str
    id: str
    model: str
    items: list[str]
    scores: list[float]
    origin: float  # earliest origin time (e.g. Kafka timestamp) of the events that changed it
    extra: dict[str, Any] | None = None  # the spec's optional or forecast fields

    @property
    def spec(self) -> ListSpec:
        return BY_NAME[self.kind]


def key_table(defaults: Mapping[str, object]) -> str:
    """The key table of docs/redis-keys.md, rendered from :data:`LISTS` and the settings' ``defaults``
    (a test keeps the page equal to it).

    >>> key_table({"ttl_session_s": 7200}).splitlines()[2].split(" | ")[1:5:3]
    ['`{prefix}rec:session:{session_id}`', '7200']
    """
    rows = [
        "| kind | key | what | TTL setting | default TTL (s) | rewritten at most every | payload |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for spec in LISTS:
        refresh = f"`SHOPSTREAM_{spec.refresh_setting.upper()}`" if spec.refresh_setting else "every batch"
        fields = ", ".join([*spec.payload, *(f"{name} (optional)" for name in spec.optional)])
        rows.append(
            f"| {spec.name} | `{{prefix}}{spec.key_template}` "
            f"| {spec.description} | `SHOPSTREAM_{spec.ttl_setting.upper()}` | {defaults.get(spec.ttl_setting, '')} "
            f"| {refresh} | {fields} |"
        )
    return "\n".join(rows)
