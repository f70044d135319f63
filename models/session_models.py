"""The session model the stack serves, by its configured name (``StackConfig.session_model``).

``transitions`` is the stack's own item-to-item model; ``session_blend`` wraps that same instance (so
the items it learns are learned once and also serve the similar-items lists) with a session-kNN.
"""

from __future__ import annotations

from shopstream.models.base import SessionRecommender
from shopstream.models.session_blend import SessionBlend, default_knns
from shopstream.models.session_knn import SessionKNN
from shopstream.models.stack_config import StackConfig
from shopstream.models.transitions import SessionTransitions

#: Recent items per session the blend's kNN keeps: a session's similarity leans on its last items anyway
#: (position weights), and a long basket would otherwise cost a list update per item on every click.
BLEND_KNN_WINDOW = 20


def vsknn(config: StackConfig) -> SessionKNN:
    """V-SKNN as docs/evaluation.md measured it (also a strategy arm of models/strategies.py)."""
    return SessionKNN(
        k=100, sample_size=500, similarity="vec", weighting="div", max_sessions=config.max_sessions,
        session_ttl_s=config.session_ttl_s,
    )


def build_session_model(config: StackConfig, transitions: SessionTransitions) -> SessionRecommender:
    """The configured session model; V-SKNN forgets sessions idle past the TTL, the blend's kNN only by its cap
    (an idle session is still a neighbour: on a shop with few sessions an hour, months of them are)."""
    if config.session_model == "transitions":
        return transitions
    if config.session_model == "vsknn":
        return vsknn(config)
    if config.session_model == "session_blend":
        return SessionBlend(transitions, default_knns(BLEND_KNN_WINDOW, config.max_sessions))
    raise ValueError(f"unknown session model {config.session_model!r}")
