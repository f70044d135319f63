"""Windowed forecaster: windows close by event time, idle windows are not periods, forecasts track."""

import math
import pickle

import pytest
from river import time_series

from shopstream.models.events import Event
from shopstream.models.forecast import TSB, WindowedForecaster, shop_model

HOUR = 3600.0


def _sell(model: WindowedForecaster, ts: float, item: str, quantity: int, price: float = 1.0) -> None:
    model.learn_one(Event("e", ts, "s", "purchase", item, quantity=quantity, price=price, category="c"))


def _hourly(model: WindowedForecaster, values: list[int], item: str = "a") -> None:
    for hour, value in enumerate(values):
        _sell(model, hour * HOUR + 1, item, value)
    _sell(model, len(values) * HOUR + 1, item, 1)  # opens the next window, closing the last one


def test_linear_trend_is_forecast_closely():
    model = WindowedForecaster(window_s=HOUR, models={"shop": lambda: time_series.HoltWinters(0.5, 0.3)})
    _hourly(model, [100 + 5 * t for t in range(60)])
    assert model.forecast(("shop", None), 3) == pytest.approx([400, 405, 410], rel=0.02)


def test_seasonal_series_is_forecast_closely():
    season = [50, 80, 120, 90, 60, 30]
    values = [200 + season[t % 6] + t for t in range(120)]
    model = WindowedForecaster(window_s=HOUR)  # default shop model: Holt-Winters, six-period season
    _hourly(model, values)
    expected = [200 + season[t % 6] + t for t in range(120, 126)]
    forecast = model.forecast(("shop", None), 6)
    assert max(abs(f - e) / e for f, e in zip(forecast, expected, strict=True)) < 0.08


def test_idle_windows_are_skipped_but_item_silences_are_zeros():
    model = WindowedForecaster(
        window_s=HOUR, models={"shop": shop_model, "item": lambda: TSB(1.0, 1.0)}, min_periods=1
    )
    _sell(model, 0, "a", 5)
    _sell(model, HOUR, "b", 5)  # "a" sells nothing in this period
    _sell(model, 10 * HOUR, "b", 5)  # eight idle hours in between: not periods
    series = model._series[("item", "a")]
    model.forecast(("item", "a"), 1)
    assert series.closed == 2  # [5, 0], not ten periods
    assert model.forecast(("item", "a"), 1) == [0.0]


def test_revenue_category_and_late_events():
    model = WindowedForecaster(
        window_s=HOUR, measure="revenue", models={"category": lambda: TSB(1.0, 1.0)}, min_periods=1
    )
    _sell(model, 10, "a", 2, price=2.5)
    _sell(model, HOUR + 10, "a", 1)
    _sell(model, 5, "a", 1)  # its window is closed: counted as late, not learned
    assert model.forecast(("category", "c"), 2) == [5.0, 5.0]
    assert model.late_events == 1


def test_series_are_capped_and_model_pickles():
    model = WindowedForecaster(window_s=HOUR, max_series=10)
    for n in range(500):
        _sell(model, n * 60.0, f"item{n % 37}", 1)
    assert model.size() == {"series": 10}
    clone = pickle.loads(pickle.dumps(model))
    assert clone.forecast(("shop", None), 2) == model.forecast(("shop", None), 2)


def test_tsb_decays_after_demand_stops():
    model = TSB(alpha=0.2, beta=0.2)
    for _ in range(20):
        model.learn_one(10.0)
    high = model.forecast(1)[0]
    for _ in range(20):
        model.learn_one(0.0)
    assert math.isclose(high, 10.0, rel_tol=0.01) and model.forecast(1)[0] < 0.2


def test_young_series_do_not_forecast():
    model = WindowedForecaster(window_s=HOUR)
    _hourly(model, [10, 20, 30])
    assert model.forecast(("shop", None), 2) == []


def test_events_within_the_allowed_lateness_still_count() -> None:
    """Two partitions read one after the other: the second's older events must land in their windows."""
    model = WindowedForecaster(window_s=10, models={"shop": lambda: TSB(1.0, 1.0)}, min_periods=1,
                               allowed_lateness_s=30)
    for ts in (1, 11, 21, 31):  # partition A
        _sell(model, ts, "a", 1)
    for ts in (2, 12, 22):  # partition B, behind A
        _sell(model, ts, "a", 1)
    assert model.late_events == 0
    _sell(model, 45, "a", 1)  # watermark 15: windows [0, 10) closed, with both partitions' sales
    assert model.forecast(("shop", None), 1) == [2.0]
    _sell(model, 3, "a", 1)  # its window has closed: late, not learned
    assert model.late_events == 1
