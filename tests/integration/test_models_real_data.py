"""ImplicitMF/RepeatBuyBlend and the demand forecaster on the real Online Retail log (baselines.md).

Data is found through ``SHOPSTREAM_SHARED_DATA`` (default: ``shared/data`` beside the checkout).
"""

from __future__ import annotations

from typing import Any

import pytest

from shopstream.models.evaluation.baselines import Popularity, RecentPopularity
from shopstream.models.evaluation.forecasting import evaluate_daily_forecasts
from shopstream.models.evaluation.loaders import load_online_retail
from shopstream.models.evaluation.run import ONLINE_RETAIL_TEST_START
from shopstream.models.evaluation.user_protocol import evaluate_users
from shopstream.models.repeat_blend import RepeatBuyBlend
from tests.shared_data import SHARED_DATA

RETAIL = SHARED_DATA / "online-retail" / "online_retail.csv.gz"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def next_invoice() -> dict[str, dict[str, Any]]:
    models = {"popularity": Popularity, "recent_popularity": RecentPopularity, "blend": lambda: RepeatBuyBlend(seed=0)}
    return evaluate_users(load_online_retail(RETAIL), models, ONLINE_RETAIL_TEST_START, ks=(20,))


def test_protocol_case_count(next_invoice: dict[str, dict[str, Any]]) -> None:
    assert {row["cases"] for row in next_invoice.values()} == {2_431}


def test_served_blend_beats_popularity_and_the_repeat_row(next_invoice: dict[str, dict[str, Any]]) -> None:
    blend = next_invoice["blend"]
    assert blend["hr@20"] > next_invoice["recent_popularity"]["hr@20"] > next_invoice["popularity"]["hr@20"]
    assert blend["hr@20"] > 0.831 and blend["mrr@20"] > 0.446  # the published repeat row


def test_daily_units_forecaster_beats_seasonal_naive() -> None:
    result = evaluate_daily_forecasts(str(RETAIL))
    assert result["trading_days"] == 305 and result["origins"] == 60
    units = result["units"]
    assert units["seasonal_naive"]["h1_mase"] == pytest.approx(1.318, abs=0.001)  # the published row
    for h in ("h1_mase", "h7_mase"):
        assert units["forecaster"][h] < units["seasonal_naive"][h]
    assert result["items"]["forecaster"]["h1_mean_mase"] < result["items"]["seasonal_naive"]["h1_mean_mase"]
