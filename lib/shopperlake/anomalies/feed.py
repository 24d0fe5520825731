"""Feed monitoring: events per source, event type and day against a seasonal baseline.

A broken feed (a source that stops sending one type of event, or sends it twice) corrupts
every table built on it without failing anything. Per source and event type the daily counts
of ``bronze.events`` (days without events are 0, from the source's first day) are compared,
day by day, with a baseline fitted on the days before only (point in time):

* **baseline**: the same weekday of the last ``weeks`` weeks, a straight line through them by
  Theil-Sen (the median of the pairwise slopes; scipy), read at the day: weekly seasonality
  and trend, and one earlier outage cannot drag it down;
* **interval**: ``expected ± z × sigma``, sigma the larger of the robust spread of the
  baseline days around their line (1.4826 × MAD) and the Poisson noise ``sqrt(expected)``;
* **status**: ``missing`` (nothing arrived where at least ``min_expected`` were expected),
  ``low`` / ``high`` (outside the interval), ``new`` (an event type the source never sent
  before), ``no_baseline`` (fewer than ``min_weeks`` same weekdays since the type's first
  day), else ``ok``.
  An event type that vanishes shows as ``missing`` from its first silent day.

The daily counts are a few rows per source and day, so the baseline runs on the driver.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shopperlake.core.config import Config
from shopperlake.core.errors import ConfigError

STATUSES = ("ok", "low", "high", "missing", "new", "no_baseline")


@dataclass(frozen=True)
class FeedSettings:
    days: int = 7  # the days up to --as-of evaluated by each run
    weeks: int = 8  # same weekdays in the baseline
    min_weeks: int = 3
    z: float = 3.0
    min_expected: float = 5.0

    @classmethod
    def from_config(cls, cfg: Config) -> FeedSettings:
        block = cfg.get("anomalies.feed") or {}
        unknown = set(block) - {"days", "weeks", "min_weeks", "z", "min_expected"}
        if unknown:
            raise ConfigError(f"anomalies.feed: unknown key(s) {', '.join(sorted(unknown))}")
        out = cls(
            days=int(block.get("days", cls.days)),
            weeks=int(block.get("weeks", cls.weeks)),
            min_weeks=int(block.get("min_weeks", cls.min_weeks)),
            z=float(block.get("z", cls.z)),
            min_expected=float(block.get("min_expected", cls.min_expected)),
        )
        if out.days < 1 or out.min_weeks < 2 or out.weeks < out.min_weeks or out.z <= 0:
            raise ConfigError(
                "anomalies.feed needs days >= 1, 2 <= min_weeks <= weeks and z > 0, got "
                f"days={out.days}, min_weeks={out.min_weeks}, weeks={out.weeks}, z={out.z}"
            )
        return out


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


def judge(history: np.ndarray, observed: float, seen_before: bool, s: FeedSettings) -> Verdict:
    """The verdict on one day's ``observed`` count from ``history``: the counts of the same
    weekday in the weeks before it, oldest first (at most ``s.weeks``)."""
    from scipy.stats import theilslopes

    n = len(history)
    if not seen_before:
        return Verdict(None, None, None, "new" if observed > 0 else "ok", n)
    if n < s.min_weeks:
        return Verdict(None, None, None, "no_baseline", n)
    weeks = np.arange(n, dtype=float)
    slope, intercept, _, _ = theilslopes(history, weeks)
    expected = max(0.0, float(intercept + slope * n))
    residuals = history - (intercept + slope * weeks)
    spread = 1.4826 * float(np.median(np.abs(residuals - np.median(residuals))))
    sigma = max(spread, math.sqrt(expected))
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


def judge_days(
    volumes: pd.DataFrame, first: dt.date, last: dt.date, s: FeedSettings
) -> pd.DataFrame:
    """One row per source, event type and day of ``[first, last]`` (``volumes`` as from
    :func:`daily_volumes`): ``source, event_type, event_date, observed, expected, lo, hi,
    status, baseline_days``. A source is followed from its first day with any event; each
    day is judged on the days before it only."""
    out = []
    if volumes.empty:
        return pd.DataFrame(columns=[*Verdict.__dataclass_fields__, "source", "event_type"])
    vol = volumes.assign(event_date=pd.to_datetime(volumes["event_date"]))
    for source, by_source in vol.groupby("source"):
        start = by_source["event_date"].min()
        days = pd.date_range(start, pd.Timestamp(last), freq="D")
        for event_type, rows in by_source.groupby("event_type"):
            series = rows.set_index("event_date")["n"].reindex(days, fill_value=0).to_numpy()
            first_seen = int(np.argmax(series > 0))  # the type's first day with events
            for day in pd.date_range(max(pd.Timestamp(first), start), pd.Timestamp(last)):
                i = days.get_loc(day)
                if i < first_seen:
                    continue  # not sent yet: nothing to judge
                # the same weekday of earlier weeks, since the type's first day
                same = [i - 7 * k for k in range(s.weeks, 0, -1) if i - 7 * k >= first_seen]
                verdict = judge(series[same].astype(float), float(series[i]), first_seen < i, s)
                out.append(
                    {
                        "source": source,
                        "event_type": event_type,
                        "event_date": day.date(),
                        "observed": int(series[i]),
                        **verdict.__dict__,
                    }
                )
    return pd.DataFrame(out)
