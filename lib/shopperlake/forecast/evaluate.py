"""Backtest scores: per series × origin × method on Spark, pooled with bootstrap intervals on
the driver.

- WAPE, pooled: total |error| / total demand over the rows compared;
- MASE: per series and origin, MAE / the in-sample seasonal-naive-7 MAE of that origin's
  training data; the mean over rows with a non-zero scale;
- coverage: share of test days whose actual lies inside the 80 % / 95 % interval.

Intervals resample whole series (a series' origins are correlated), the same resamples for
every method, so ``selected - method`` is a paired difference ("beats" only where its
interval excludes 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from shopperlake.forecast.local import FALLBACK
from shopperlake.training.bootstrap import IndexStat, Interval, interval
from shopperlake.training.model_metrics import BootstrapSettings, Comparison, compare

SELECTED = "selected"
PAIRED_METRICS = ("wape", "mase")
COVERAGE = ("coverage_80", "coverage_95")


def _inside(lo: str, hi: str) -> Column:
    return ((F.col("actual") >= F.col(lo)) & (F.col("actual") <= F.col(hi))).cast("double")


def series_scores(forecasts: DataFrame) -> DataFrame:
    """Forecast rows with actuals → one row per series, origin and method (every candidate,
    and ``selected``: each series' chosen candidate, named in ``chosen_method``; a series
    with too little history has only ``selected``, its fallback)."""
    chosen = forecasts.where(F.col("chosen")).withColumns(
        {"chosen_method": F.col("method"), "method": F.lit(SELECTED)}
    )
    rows = (
        forecasts.where(F.col("method") != F.lit(FALLBACK))
        .withColumn("chosen_method", F.lit(None).cast("string"))
        .unionByName(chosen)
    )
    scale = F.nanvl(F.first("scale"), F.lit(None).cast("double"))
    out = rows.groupBy("series_id", "origin", "method", "chosen_method").agg(
        F.count(F.lit(1)).cast("int").alias("horizon"),
        F.sum("actual").alias("demand"),
        F.sum(F.abs(F.col("forecast") - F.col("actual"))).alias("abs_error"),
        scale.alias("scale"),
        F.avg(_inside("lo_80", "hi_80")).alias("coverage_80"),
        F.avg(_inside("lo_95", "hi_95")).alias("coverage_95"),
    )
    positive = F.col("scale") > 0
    return out.withColumns(
        {
            "wape": F.when(F.col("demand") > 0, F.col("abs_error") / F.col("demand")),
            "mase": F.when(positive, F.col("abs_error") / F.col("horizon") / F.col("scale")),
        }
    )


@dataclass(frozen=True)
class Pooled:
    """Row arrays of one method, aligned with every other method's (same series, origin)."""

    abs_error: np.ndarray
    demand: np.ndarray
    mase: np.ndarray  # nan where the scale is 0
    inside_80: np.ndarray  # days inside the interval
    inside_95: np.ndarray
    days: np.ndarray

    def stats(self) -> dict[str, IndexStat]:
        def wape(i: np.ndarray) -> float:
            return float(self.abs_error[i].sum() / self.demand[i].sum())

        def mase(i: np.ndarray) -> float:
            return float(np.nanmean(self.mase[i]))

        def cov(inside: np.ndarray) -> IndexStat:
            return lambda i: float(inside[i].sum() / self.days[i].sum())

        return {
            "wape": wape,
            "mase": mase,
            "coverage_80": cov(self.inside_80),
            "coverage_95": cov(self.inside_95),
        }


def aligned(scores: pd.DataFrame) -> tuple[dict[str, Pooled], np.ndarray, int]:
    """Per method, the rows of the (series, origin) pairs every method has (fallback series
    have only ``selected``), in one order; the series of each row; rows left out."""
    if scores.empty:
        raise ValueError("no backtest rows to compare")
    methods = sorted(scores["method"].unique())
    keys = scores.groupby(["series_id", "origin"])["method"].nunique()
    common = keys[keys == len(methods)].index
    left_out = int((keys < len(methods)).sum())
    out = {}
    for method in methods:
        part = scores[scores["method"] == method].set_index(["series_id", "origin"]).loc[common]
        days = part["horizon"].to_numpy(dtype=float)
        out[method] = Pooled(
            abs_error=part["abs_error"].to_numpy(dtype=float),
            demand=part["demand"].to_numpy(dtype=float),
            mase=part["mase"].to_numpy(dtype=float),
            inside_80=part["coverage_80"].to_numpy(dtype=float) * days,
            inside_95=part["coverage_95"].to_numpy(dtype=float) * days,
            days=days,
        )
    series = np.array([s for s, _ in common])
    return out, series, left_out


def compare_methods(
    pooled: Mapping[str, Pooled], series: np.ndarray, split: str, settings: BootstrapSettings
) -> tuple[Comparison, dict[str, dict[str, Interval]]]:
    """``selected`` vs every candidate on WAPE and MASE (paired, whole series per draw), and
    each method's coverage with its interval."""
    stats = {m: p.stats() for m, p in pooled.items()}
    paired = {m: {k: s[k] for k in PAIRED_METRICS} for m, s in stats.items()}
    n = len(series)
    comparison = compare(paired, n, SELECTED, split, settings, groups=series)
    coverage = {
        m: {
            k: interval(
                s[k], n, groups=series, n_resamples=settings.resamples, seed=settings.seed,
                level=settings.level,
            )
            for k in COVERAGE
        }
        for m, s in stats.items()
    }  # fmt: skip
    return comparison, coverage
