"""Sliding-window demand forecasts: tumbling event-time windows feed one River forecaster per series.

A window's total is learned when the window closes, so models see one value per period, exactly as
a batch forecaster would, but at microsecond cost. Windows in which nothing at all happened (the
shop was closed) are not periods: this keeps a weekly season at six trading days for a shop closed
on Saturdays. Series are capped; the least recently active are dropped.
"""

from __future__ import annotations

import math
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from river import time_series

from shopstream.models.base import Model
from shopstream.models.events import Event

SeriesKey = tuple[str, Hashable]  # ("shop", None), ("category", "toys"), ("item", "42")


class TSB(time_series.base.Forecaster):
    """Teunter-Syntetos-Babai forecaster for intermittent demand.

    Croston-type methods smooth the demand size only when a sale happens, so an item that stops
    selling keeps its old forecast; TSB also smooths the probability of a sale every period, so
    the forecast decays towards zero. The forecast is flat: ``probability * size``.

    Parameters
    ----------
    alpha
        Smoothing of the demand size (updated on periods with demand).
    beta
        Smoothing of the demand probability (updated every period).

    Examples
    --------
    >>> model = TSB(alpha=0.5, beta=0.5)
    >>> for y in [0, 4, 0, 4]:
    ...     model.learn_one(y)
    >>> model.forecast(horizon=2)
    [2.5, 2.5]
    """

    def __init__(self, alpha: float = 0.1, beta: float = 0.01) -> None:
        self.alpha = alpha
        self.beta = beta
        self._probability: float | None = None
        self._size = 0.0

    def learn_one(self, y: float, x: dict | None = None) -> None:
        occurred = y > 0
        if self._probability is None:
            self._probability = float(occurred)
            self._size = float(y)
            return
        self._probability += self.beta * (occurred - self._probability)
        if occurred:
            self._size += self.alpha * (y - self._size) if self._size else y

    def forecast(self, horizon: int, xs: list[dict] | None = None) -> list[float]:
        value = (self._probability or 0.0) * self._size
        return [value] * horizon


def shop_model() -> time_series.HoltWinters:
    """Additive Holt-Winters with a weekly season of six trading days (see the module docstring).

    Smoothing chosen by one-step MAE on Online Retail's trading days before the evaluation window.
    """
    return time_series.HoltWinters(alpha=0.05, beta=0.05, gamma=0.3, seasonality=6)


@dataclass(slots=True)
class ForecastError:
    """Running sums over scored windows: MAE = absolute / windows, WAPE = absolute / actual."""

    absolute: float = 0.0
    actual: float = 0.0
    windows: int = 0

    def add(self, absolute: float, actual: float) -> None:
        self.absolute += absolute
        self.actual += actual
        self.windows += 1


@dataclass(slots=True)
class _Series:
    model: time_series.base.Forecaster
    period: int  # closed periods already learned (the forecaster's count when last brought up to date)
    totals: dict[int, float] = field(default_factory=dict)  # open windows' totals
    closed: int = field(default=0)  # periods learned


class WindowedForecaster(Model):
    """Per-series forecasts of the next windows' totals of purchased units or revenue.

    Parameters
    ----------
    window_s
        Window length in seconds (86400 for days, 3600 for hours).
    offset_s
        Shift of window boundaries, e.g. a time-zone offset so days start at local midnight.
    measure
        ``"units"`` (sum of quantities, 1 when absent) or ``"revenue"`` (quantity * price).
    models
        Factory of a fresh forecaster per series kind (``shop``, ``category``, ``item``); kinds
        missing from it are not tracked. Defaults to Holt-Winters for the shop and TSB otherwise.
    max_series
        Series kept; the least recently active are dropped.
    max_gap
        Zero periods fed at most to a series after a silence (older silence is forgotten).
    min_periods
        Closed periods a series needs before it forecasts (Holt-Winters needs a full season).
    allowed_lateness_s
        How far behind the newest event a window stays open. Kafka partitions are consumed
        side by side, not in global time order, so a worker needs some; a window closes once the
        watermark (newest event time minus this) passes its end, and later events for it are
        counted in ``late_events`` and not learned.

    Examples
    --------
    >>> from shopstream.models.events import Event
    >>> model = WindowedForecaster(window_s=10, models={"shop": lambda: TSB(1.0, 1.0)}, min_periods=1)
    >>> for i, ts in enumerate([1, 2, 11, 25]):
    ...     model.learn_one(Event(f"e{i}", ts, "s", "purchase", "a", quantity=3))
    >>> model.forecast(("shop", None), horizon=2)   # windows [0, 10) and [10, 20) closed: 6 then 3
    [3.0, 3.0]
    >>> model.forecast(("item", "a"), horizon=1)    # items are not tracked in this model
    []
    """

    name = "windowed_forecaster"

    def __init__(
        self,
        window_s: float = 86400.0,
        offset_s: float = 0.0,
        measure: str = "units",
        models: dict[str, Callable[[], time_series.base.Forecaster]] | None = None,
        max_series: int = 50_000,
        max_gap: int = 28,
        min_periods: int = 7,
        allowed_lateness_s: float = 0.0,
    ) -> None:
        if measure not in ("units", "revenue"):
            raise ValueError("measure must be 'units' or 'revenue'")
        self.window_s = window_s
        self.offset_s = offset_s
        self.measure = measure
        self.models = models
        self.max_series = max_series
        self.max_gap = max_gap
        self.min_periods = min_periods
        self.allowed_lateness_s = allowed_lateness_s

        self._factories = models if models is not None else {"shop": shop_model, "category": TSB, "item": TSB}
        self._series: OrderedDict[SeriesKey, _Series] = OrderedDict()  # activity order
        self._open: set[int] = set()  # windows with activity that the watermark has not passed
        self._closed_below = -math.inf  # every window below this index is closed
        self._period = 0  # how many windows with activity have closed
        self._recent: deque[tuple[int, int]] = deque(maxlen=max_gap + 1)  # (period, window) of the last closes
        self.late_events = 0
        self.evicted_series = 0
        self.errors: defaultdict[str, ForecastError] = defaultdict(ForecastError)  # by series kind

    def learn_one(self, event: Event) -> None:
        # Every event moves the watermark (a quiet hour of views still closes the hour); only purchases count.
        self._advance((event.ts - self.allowed_lateness_s + self.offset_s) // self.window_s)
        if event.type != "purchase":
            return
        window = int((event.ts + self.offset_s) // self.window_s)
        if window < self._closed_below:
            self.late_events += 1  # its window is closed and learned: counting it now would lie
            return
        self._open.add(window)
        quantity = event.quantity or 1
        value = quantity if self.measure == "units" else quantity * (event.price or 0.0)
        if not math.isfinite(value):  # events are bounded (EventLimits); an Event built in code may not be
            return
        keys: list[SeriesKey] = [("shop", None), ("item", event.item_id)]
        if event.category is not None:
            keys.append(("category", event.category))
        for key in keys:
            series = self._get(key, create=True)
            if series is not None:
                series.totals[window] = series.totals.get(window, 0.0) + value

    @property
    def periods(self) -> int:
        """Windows with activity closed so far: when it grows, forecasts change."""
        return self._period

    def _advance(self, closed_below: float) -> None:
        """Close, in order, the open windows that end at or before the watermark."""
        if closed_below <= self._closed_below:
            return
        self._closed_below = closed_below
        for window in sorted(w for w in self._open if w < closed_below):
            self._open.discard(window)
            self._period += 1
            self._recent.append((self._period, window))

    def _get(self, key: SeriesKey, create: bool) -> _Series | None:
        """The series brought up to the current period: closed windows learned, silent ones as 0."""
        series = self._series.get(key)
        if series is None:
            factory = self._factories.get(key[0])
            if not create or factory is None:
                return None
            series = _Series(factory(), self._period)
        if series.period < self._period:
            for period, window in self._recent:
                if period > series.period:
                    value = series.totals.pop(window, 0.0)
                    self._score(key[0], series, value)
                    series.model.learn_one(value)
                    series.closed += 1
            series.period = self._period
            for stale in [w for w in series.totals if w < self._closed_below]:
                del series.totals[stale]  # closed longer ago than ``max_gap`` periods
        if create:
            self._series[key] = series
            self._series.move_to_end(key)
            if len(self._series) > self.max_series:
                self._series.popitem(last=False)
                self.evicted_series += 1
        return series

    def _ready(self, series: _Series) -> bool:
        """Enough closed windows to forecast: ``min_periods``, and Holt-Winters' own warm-up of a season."""
        warmup = max(2, series.model.seasonality) if isinstance(series.model, time_series.HoltWinters) else 1
        return series.closed >= max(warmup, self.min_periods)

    def _score(self, kind: str, series: _Series, actual: float) -> None:
        """Before a closed window is learned, score the one-step forecast the series was serving."""
        if self._ready(series):
            predicted = max(0.0, float(series.model.forecast(1)[0]))
            self.errors[kind].add(abs(predicted - actual), actual)

    def forecast(self, key: SeriesKey, horizon: int) -> list[float]:
        """Totals of the next ``horizon`` periods after the last closed one; [] if unknown or young.

        The open window is not complete, so it is not learned; the first value forecasts it.
        """
        series = self._get(key, create=False)
        if series is None or series.closed < self.min_periods:
            return []
        values = [max(0.0, float(v)) for v in series.model.forecast(horizon)]
        return values if all(math.isfinite(v) for v in values) else []

    def size(self) -> dict[str, int]:
        return {"series": len(self._series)}

    def evictions(self) -> dict[str, int]:
        return {"series": self.evicted_series}
