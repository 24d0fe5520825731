"""Feed monitoring: events per source, event type and day against a seasonal baseline.

A broken feed (a source that stops sending one type of event, or sends it twice) corrupts
every table built on it without failing anything. Per source and event type the daily counts
of ``bronze.events`` (days without events are 0, from the source's first day) are compared,
day by day, with a baseline fitted on the days before only (point in time):

* **baseline**: the same weekday of the last ``weeks`` weeks the shop was open, a straight line
  through them by Theil-Sen (the median of the pairwise slopes; scipy), read at the day:
  weekly seasonality and trend, and one earlier outage cannot drag it down;
* **noise**: the larger of the Poisson noise ``sqrt(expected)``, the robust spread of the
  baseline days around their line (1.4826 × MAD) and, once the series has ``noise_min_days``
  judged days in the ``noise_days`` before the day, ``expected`` × the robust spread of the
  baseline's own relative errors on those days (its noise model, fitted on the series' own
  history: a wholesaler's volumes swing more than eight same weekdays show);
* **interval**: ``expected ± z × noise``;
* **status**: ``closed`` (a closing day of the source's calendar, ``closed_days``: nothing is
  expected and the day is left out of every baseline), ``missing`` (nothing arrived where at
  least ``min_expected`` were expected), ``low`` / ``high`` (outside the interval), ``new``
  (an event type the source never sent before), ``no_baseline`` (fewer than ``min_weeks``
  same weekdays since the type's first day), else ``ok``.
  An event type that vanishes shows as ``missing`` from its first silent day.

The daily counts are a few rows per source and day, so the baseline runs on the driver.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shopperlake.core.calendar import closed_mask, parse_closed_days
from shopperlake.core.config import Config
from shopperlake.core.errors import ConfigError

STATUSES = ("ok", "low", "high", "missing", "new", "no_baseline", "closed")
KEYS = ("days", "weeks", "min_weeks", "z", "min_expected", "noise_days", "noise_min_days",
        "closed_days")  # fmt: skip


@dataclass(frozen=True)
class FeedSettings:
    days: int = 7  # the days up to --as-of evaluated by each run
    weeks: int = 8  # same weekdays in the baseline
    min_weeks: int = 3
    z: float = 3.0
    min_expected: float = 5.0
    noise_days: int = 91  # the baseline's relative errors on these days: the noise model
    noise_min_days: int = 28  # fewer judged days before: the eight-week spread alone
    # source -> its closing days (MM-DD every year, YYYY-MM-DD once); "*": every source
    closed_days: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Config) -> FeedSettings:
        block = cfg.get("anomalies.feed") or {}
        unknown = set(block) - set(KEYS)
        if unknown:
            raise ConfigError(f"anomalies.feed: unknown key(s) {', '.join(sorted(unknown))}")
        out = cls(
            days=int(block.get("days", cls.days)),
            weeks=int(block.get("weeks", cls.weeks)),
            min_weeks=int(block.get("min_weeks", cls.min_weeks)),
            z=float(block.get("z", cls.z)),
            min_expected=float(block.get("min_expected", cls.min_expected)),
            noise_days=int(block.get("noise_days", cls.noise_days)),
            noise_min_days=int(block.get("noise_min_days", cls.noise_min_days)),
            closed_days=_closed_by_source(block.get("closed_days")),
        )
        if out.days < 1 or out.min_weeks < 2 or out.weeks < out.min_weeks or out.z <= 0:
            raise ConfigError(
                "anomalies.feed needs days >= 1, 2 <= min_weeks <= weeks and z > 0, got "
                f"days={out.days}, min_weeks={out.min_weeks}, weeks={out.weeks}, z={out.z}"
            )
        if out.noise_days < 0 or out.noise_min_days < 2:
            raise ConfigError(
                "anomalies.feed needs noise_days >= 0 (0: no noise model) and noise_min_days "
                f">= 2, got noise_days={out.noise_days}, noise_min_days={out.noise_min_days}"
            )
        return out

    def closed_for(self, source: str) -> tuple[str, ...]:
        """The source's closing days: its own and those of every source (``*``)."""
        return (*self.closed_days.get("*", ()), *self.closed_days.get(source, ()))


def _closed_by_source(value: Any) -> dict[str, tuple[str, ...]]:
    """``anomalies.feed.closed_days``: ``{source: [days]}``, ``*`` for every source."""
    key = "anomalies.feed.closed_days"
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must map a source (or * for every source) to a list of days")
    return {str(k): parse_closed_days(v, f"{key}.{k}") for k, v in value.items()}


def daily_volumes(events: DataFrame, last: dt.date) -> pd.DataFrame:
    """``source, event_type, event_date, n``: events per source, type and day up to ``last``."""
    rows = (
        events.where(F.col("event_date") <= F.lit(last))
        .groupBy("source", "event_type", "event_date")
        .agg(F.count(F.lit(1)).alias("n"))
    )
    return rows.toPandas()


@dataclass(frozen=True)
class Verdict:
    expected: float | None
    lo: float | None
    hi: float | None
    status: str
    baseline_days: int


def judge(
    history: np.ndarray,
    observed: float,
    seen_before: bool,
    s: FeedSettings,
    weeks_back: np.ndarray | None = None,
    noise: float | None = None,
) -> Verdict:
    """The verdict on one day's ``observed`` count from ``history``: the counts of the same
    weekday in the weeks before it, oldest first (at most ``s.weeks``), ``weeks_back`` weeks
    before the day (default ``n, n - 1, .., 1``: consecutive weeks). ``noise``: the relative
    noise of the series' baseline (see :func:`judge_days`), or None."""
    from scipy.stats import theilslopes

    n = len(history)
    if not seen_before:
        return Verdict(None, None, None, "new" if observed > 0 else "ok", n)
    if n < s.min_weeks:
        return Verdict(None, None, None, "no_baseline", n)
    x = -(np.arange(n, 0, -1, dtype=float) if weeks_back is None else weeks_back.astype(float))
    slope, intercept, _, _ = theilslopes(history, x)
    expected = max(0.0, float(intercept))  # the line at x = 0: the day itself
    residuals = history - (intercept + slope * x)
    spread = 1.4826 * float(np.median(np.abs(residuals - np.median(residuals))))
    sigma = max(spread, math.sqrt(expected), (noise or 0.0) * expected)
    lo, hi = max(0.0, expected - s.z * sigma), expected + s.z * sigma
    if observed == 0 and expected >= s.min_expected:
        status = "missing"
    elif observed < lo:
        status = "low"
    elif observed > hi:
        status = "high"
    else:
        status = "ok"
    return Verdict(expected, lo, hi, status, n)


def same_weekdays(i: int, first_seen: int, closed: np.ndarray, weeks: int) -> list[int]:
    """Indices of the last ``weeks`` same weekdays before day ``i`` since ``first_seen`` on
    which the shop was open, newest first."""
    out: list[int] = []
    j = i - 7
    while j >= first_seen and len(out) < weeks:
        if not closed[j]:
            out.append(j)
        j -= 7
    return out


def relative_noise(errors: np.ndarray, min_days: int) -> float | None:
    """1.4826 × the MAD of the baseline's relative errors ``(observed - expected) /
    expected`` (nan where a day had no baseline or was closed); None under ``min_days``."""
    known = errors[~np.isnan(errors)]
    if len(known) < min_days:
        return None
    return 1.4826 * float(np.median(np.abs(known - np.median(known))))


def judge_days(
    volumes: pd.DataFrame, first: dt.date, last: dt.date, s: FeedSettings
) -> pd.DataFrame:
    """One row per source, event type and day of ``[first, last]`` (``volumes`` as from
    :func:`daily_volumes`): ``source, event_type, event_date, observed, expected, lo, hi,
    status, baseline_days``. A source is followed from its first day with any event; each
    day is judged on the days before it only: the baseline on the same weekdays, the noise
    model on the baseline's relative errors over the ``noise_days`` before it."""
    out = []
    if volumes.empty:
        return pd.DataFrame(columns=[*Verdict.__dataclass_fields__, "source", "event_type"])
    vol = volumes.assign(event_date=pd.to_datetime(volumes["event_date"]))
    for source, by_source in vol.groupby("source"):
        start = by_source["event_date"].min()
        days = pd.date_range(start, pd.Timestamp(last), freq="D")
        closed = closed_mask(days, s.closed_for(str(source)))
        for event_type, rows in by_source.groupby("event_type"):
            series = rows.set_index("event_date")["n"].reindex(days, fill_value=0).to_numpy()
            series = series.astype(float)
            first_seen = int(np.argmax(series > 0))  # the type's first day with events
            judged_from = days.get_loc(max(pd.Timestamp(first), start))
            # the baseline's relative errors on the days the noise model looks back on (none
            # without a noise model)
            errors = np.full(len(days), np.nan)
            since = max(first_seen + 1, judged_from - s.noise_days) if s.noise_days else len(days)
            for j in range(since, len(days) - 1):
                same = same_weekdays(j, first_seen, closed, s.weeks)
                if closed[j] or len(same) < s.min_weeks:
                    continue
                v = judge(series[same[::-1]], series[j], True, s,
                          weeks_back=(j - np.array(same[::-1])) // 7)  # fmt: skip
                if v.expected:
                    errors[j] = (series[j] - v.expected) / v.expected
            for i in range(judged_from, len(days)):
                if i < first_seen:
                    continue  # not sent yet: nothing to judge
                same = same_weekdays(i, first_seen, closed, s.weeks)[::-1]
                if closed[i]:
                    verdict = Verdict(0.0, 0.0, 0.0, "closed", len(same))
                else:
                    noise = None
                    if s.noise_days:
                        window = errors[max(0, i - s.noise_days) : i]
                        noise = relative_noise(window, s.noise_min_days)
                    verdict = judge(series[same], series[i], first_seen < i, s,
                                    weeks_back=(i - np.array(same, dtype=int)) // 7,
                                    noise=noise)  # fmt: skip
                out.append(
                    {
                        "source": source,
                        "event_type": event_type,
                        "event_date": days[i].date(),
                        "observed": int(series[i]),
                        **verdict.__dict__,
                    }
                )
    return pd.DataFrame(out)
