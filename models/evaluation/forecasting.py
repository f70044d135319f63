"""Online Retail daily-forecast protocol (see ``shared/notes/baselines.md``), streamed.

The event log is replayed through :class:`~shopstream.models.forecast.WindowedForecaster` with
daily windows; at the first sale of each of the last 60 trading days (the origin) the forecaster
has learned every earlier day and forecasts this day and the six after. Baselines are computed
from the same daily totals. Cancellations are not netted (as in the peers' protocol): the
cancellation rows are dropped and the orders they cancel are kept.
"""

from __future__ import annotations

import calendar
import csv
import gzip
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime

import numpy as np

from shopstream.models.evaluation.loaders import NON_PRODUCT_CODES
from shopstream.models.events import Event
from shopstream.models.forecast import TSB, WindowedForecaster, shop_model

SEASON = 6  # trading days in a week: the shop never trades on Saturdays
N_ORIGINS = 60
HORIZONS = (1, 7)
N_ITEMS = 50

Forecast = Callable[[np.ndarray, int], np.ndarray]  # (history, horizon) -> forecasts


def read_sales(path: str) -> Iterator[tuple[float, str, int, float]]:
    """Cleaned sale lines ``(unix_ts, stock_code, quantity, unit_price)`` in file order.

    Rows without a CustomerID are kept (they are real sales); timestamps are read as UTC so that
    daily windows fall on the shop's calendar days.
    """
    with gzip.open(path, "rt", newline="") as f:
        for row in csv.DictReader(f):
            code = row["StockCode"].strip()
            quantity, price = int(row["Quantity"]), float(row["UnitPrice"])
            if (
                row["InvoiceNo"].startswith("C")
                or quantity <= 0
                or price <= 0
                or code in NON_PRODUCT_CODES
                or not any(c.isdigit() for c in code)
            ):
                continue
            when = datetime.fromisoformat(row["InvoiceDate"])
            yield float(calendar.timegm(when.timetuple())), code, quantity, price


def naive(history: np.ndarray, horizon: int) -> np.ndarray:
    return np.full(horizon, history[-1], dtype=float)


def seasonal_naive(history: np.ndarray, horizon: int) -> np.ndarray:
    return np.array([history[-SEASON + (h % SEASON)] for h in range(horizon)], dtype=float)


def moving_average_28(history: np.ndarray, horizon: int) -> np.ndarray:
    return np.full(horizon, history[-28:].mean())


BASELINES: dict[str, Forecast] = {
    "naive": naive,
    "seasonal_naive": seasonal_naive,
    "moving_average_28": moving_average_28,
}


def _scale(history: np.ndarray) -> float:
    """Hyndman's MASE denominator: in-sample MAE of the seasonal-naive forecast."""
    return float(np.abs(history[SEASON:] - history[:-SEASON]).mean())


def _score(series: np.ndarray, origins: list[int], forecasts: dict[int, np.ndarray]) -> dict[str, float]:
    """MAE and MASE at h=1 and over the next 7 days, across origins with the whole horizon observed."""
    out: dict[str, float] = {}
    for h in HORIZONS:
        errors, scaled = [], []
        for origin in origins:
            if origin + h > series.size:
                continue
            error = float(np.abs(series[origin : origin + h] - forecasts[origin][:h]).mean())
            errors.append(error)
            scaled.append(error / _scale(series[:origin]))
        out[f"h{h}_mae"], out[f"h{h}_mase"] = float(np.mean(errors)), float(np.mean(scaled))
    return out


def _replay(
    sales: list[tuple[float, str, int, float]], days: list[int], origins: list[int], items: list[str]
) -> dict[str, dict[int, np.ndarray]]:
    """Stream the sales through the forecasters and collect their forecasts at every origin."""
    units = WindowedForecaster(measure="units", models={"shop": shop_model, "item": TSB})
    revenue = WindowedForecaster(measure="revenue", models={"shop": shop_model})
    origin_days = {days[origin]: origin for origin in origins}
    out: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
    horizon = max(HORIZONS)
    current = None
    for i, (ts, code, quantity, price) in enumerate(sales):
        event = Event(str(i), ts, "s", "purchase", code, quantity=quantity, price=price)
        units.learn_one(event)
        revenue.learn_one(event)
        day = int(ts // 86400)
        if day != current and day in origin_days:
            origin = origin_days[day]
            out["units"][origin] = np.array(units.forecast(("shop", None), horizon))
            out["revenue"][origin] = np.array(revenue.forecast(("shop", None), horizon))
            for item in items:
                forecast = units.forecast(("item", item), horizon)
                out[item][origin] = np.array(forecast) if forecast else np.zeros(horizon)
        current = day
    return out


def evaluate_daily_forecasts(path: str) -> dict:
    """Rolling-origin MAE/MASE of the streamed forecaster and the baselines on Online Retail."""
    sales = sorted(read_sales(path))
    days = sorted({int(ts // 86400) for ts, *_ in sales})  # days with any sale = trading days
    position = {day: i for i, day in enumerate(days)}
    units, revenue = np.zeros(len(days)), np.zeros(len(days))
    per_item: dict[str, np.ndarray] = {}
    for ts, code, quantity, price in sales:
        d = position[int(ts // 86400)]
        units[d] += quantity
        revenue[d] += quantity * price
        per_item.setdefault(code, np.zeros(len(days)))[d] += quantity
    origins = list(range(len(days) - N_ORIGINS, len(days)))
    first = origins[0]
    before = Counter({code: float(series[:first].sum()) for code, series in per_item.items()})
    items = [code for code, _ in before.most_common(N_ITEMS)]
    streamed = _replay(sales, days, origins, items)

    def rows(series: np.ndarray, model_forecasts: dict[int, np.ndarray]) -> dict[str, dict[str, float]]:
        table = {"forecaster": _score(series, origins, model_forecasts)}
        for name, baseline in BASELINES.items():
            forecasts = {o: baseline(series[:o], max(HORIZONS)) for o in origins}
            table[name] = _score(series, origins, forecasts)
        return table

    item_tables = [rows(per_item[code], streamed[code]) for code in items]
    item_summary = {
        name: {
            "h1_mean_mase": float(np.mean([t[name]["h1_mase"] for t in item_tables])),
            "share_beating_seasonal_naive": float(
                np.mean([t[name]["h1_mase"] < t["seasonal_naive"]["h1_mase"] for t in item_tables])
            ),
        }
        for name in item_tables[0]
    }
    return {
        "trading_days": len(days),
        "origins": len(origins),
        "cancellations_netted": False,
        "units": rows(units, streamed["units"]),
        "revenue": rows(revenue, streamed["revenue"]),
        "items": item_summary,
    }
