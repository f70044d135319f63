"""Capacities, horizons and refresh intervals of the model stack, with their defaults (the only copy:
the worker's settings take theirs from here). Dependency-free, so settings can import it without the models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SessionModelName = Literal["transitions", "vsknn", "session_blend"]  # docs/evaluation.md compares them
ExperimentName = Literal["off", "thompson", "ucb", "ab"]  # how a session's list strategy is chosen
RewardName = Literal["click", "add_to_cart", "purchase"]  # what the strategy bandit counts as a success
#: The strategies each surface's list can be filled by (models/strategies.py), a fixed set: they are metric labels.
SESSION_STRATEGIES = ("transitions", "vsknn", "trending")
USER_STRATEGIES = ("repeat_blend", "session", "trending")
ITEM_STRATEGIES = ("transitions", "vsknn", "trending")
#: Each experimented surface's arms setting and the strategies it may name.
SURFACE_ARMS = {
    "session": ("experiment_arms", SESSION_STRATEGIES),
    "user": ("experiment_user_arms", USER_STRATEGIES),
    "item": ("experiment_item_arms", ITEM_STRATEGIES),
}


@dataclass(frozen=True, slots=True)
class StackConfig:
    """Capacities and horizons of the model stack; every structure is bounded by one of these."""

    top_k: int = 20
    max_sessions: int = 200_000
    max_users: int = 200_000
    max_items: int = 200_000
    session_ttl_s: float = 1800.0
    trending_half_life_s: float = 6 * 3600.0
    dedupe_window: int = 500_000
    session_model: SessionModelName = "transitions"
    mf_negatives: int = 1
    forecast_window_s: float = 86400.0
    forecast_horizon: int = 7
    forecast_lateness_s: float = 600.0  # partitions are consumed side by side, not in time order
    item_refresh_s: float = 5.0  # an item's similar-items list is rewritten at most this often (event time)
    user_refresh_s: float = 1.0  # and a user's list; session lists are rewritten in every batch that touches them
    trending_refresh_s: float = 1.0  # and the trending lists (global and per category)
    seed: int = 0
    experiment: ExperimentName = "off"
    experiment_arms: str = "transitions,vsknn,trending"  # comma-separated, from SESSION_STRATEGIES
    experiment_user_arms: str = "repeat_blend,session,trending"  # from USER_STRATEGIES
    experiment_item_arms: str = "transitions,vsknn,trending"  # from ITEM_STRATEGIES
    experiment_floor: float = 0.1  # share of new sessions spread evenly over the arms whatever the evidence
    experiment_reward: RewardName = "click"
    attribution_window_s: float = 1800.0  # clicks and conversions credited to lists shown this long before
    hit_rate_sample: float = 0.002  # share of sessions whose positive events the online hit-rate scores

    def arms(self, surface: str = "session") -> tuple[str, ...]:
        """The experiment's arms on ``surface`` (session, user or item), in the configured order."""
        value = getattr(self, SURFACE_ARMS[surface][0])
        return tuple(name.strip() for name in value.split(",") if name.strip())
