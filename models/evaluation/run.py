"""One entry point over the datasets: load, pick the protocol, score the default or given models.

Default models are the session-kNN family with session-rec's published settings (not tuned here),
the served models and the popularity bars; any :class:`SessionRecommender` or :class:`UserRecommender` factory plugs
in through ``models``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shopstream.models.base import Model
from shopstream.models.evaluation.baselines import Popularity, RecentPopularity
from shopstream.models.evaluation.loaders import (
    load_jsonl,
    load_online_retail,
    load_retailrocket,
    load_tsv,
    load_yoochoose,
    split_by_time,
)
from shopstream.models.evaluation.session_protocol import evaluate_sessions
from shopstream.models.evaluation.user_protocol import evaluate_users
from shopstream.models.events import Event
from shopstream.models.mf import ImplicitMF
from shopstream.models.repeat_blend import RepeatBuyBlend
from shopstream.models.session_knn import SessionKNN
from shopstream.models.session_models import build_session_model
from shopstream.models.stack_config import StackConfig
from shopstream.models.transitions_index import IndexedTransitions

#: Online Retail's test part starts here (baselines.md).
ONLINE_RETAIL_TEST_START = datetime(2011, 11, 9, tzinfo=UTC).timestamp()

LOADERS: dict[str, Callable[[str | Path], Iterator[Event]]] = {
    "yoochoose": load_yoochoose,
    "online-retail": load_online_retail,
    "retailrocket": load_retailrocket,
    "jsonl": load_jsonl,
    "tsv": load_tsv,
}


def default_session_models() -> dict[str, Callable[[], Model]]:
    """V-SKNN with session-rec's class defaults; V-STAN with its shipped rsc15 config ("vstan-mrr")."""
    return {
        "vsknn": lambda: SessionKNN(k=100, sample_size=500, similarity="vec", weighting="div"),
        "vstan": lambda: SessionKNN(
            k=1000,
            sample_size=5000,
            similarity="cosine",
            lambda_spw=4,
            lambda_snh=5,
            lambda_inh=4,
            lambda_ipw=1e-5,
            idf_weighting=1,
        ),
        # The worker's default session model; its defaults were chosen on the last day of the train file.
        "transitions": IndexedTransitions,
        # The worker's opt-in blend, built as the worker builds it (on this run's own transitions model).
        "session_blend": lambda: build_session_model(StackConfig(session_model="session_blend"), IndexedTransitions()),
        "popularity": Popularity,
        "recent_popularity": RecentPopularity,
    }


def default_user_models() -> dict[str, Callable[[], Model]]:
    """The served user blend (as the worker builds it: MF with 1 negative), MF alone, and the popularity bars."""
    return {
        "blend": lambda: RepeatBuyBlend(seed=0),
        "implicit_mf": lambda: ImplicitMF(n_negatives=4, seed=0),
        "popularity": Popularity,
        "recent_popularity": RecentPopularity,
    }


def run_evaluation(
    dataset: str,
    path: str | Path,
    ks: Sequence[int] = (10, 20),
    models: Mapping[str, Callable[[], Model]] | None = None,
    test_days: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Metrics per model (``hr@K``, ``mrr@K``, ``recall@K``, ``coverage``, ``events_per_s``, ``cases``).

    ``events_per_s`` counts every event learned (and served) per CPU second of this process on one
    core, so other load on the machine does not skew it.

    ``online-retail`` runs the next-invoice protocol for known customers; the other datasets run the
    session protocol: with ``test_days``, sessions ending in the log's last ``test_days`` days are the
    test part (replacing YOOCHOOSE's predefined one); without, YOOCHOOSE uses its predefined test part
    and the others are fully prequential.
    """
    if dataset not in LOADERS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(LOADERS)}")
    if dataset == "online-retail" and test_days is not None:
        raise ValueError("online-retail is scored under its protocol's own split; test_days does not apply")
    events = LOADERS[dataset](path)
    if test_days is not None:
        events = split_by_time(events, test_days)
    if dataset == "online-retail":
        return evaluate_users(events, models or default_user_models(), ONLINE_RETAIL_TEST_START, ks)  # type: ignore[arg-type]
    return evaluate_sessions(events, models or default_session_models(), ks)  # type: ignore[arg-type]
