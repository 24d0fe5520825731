"""``gold.model_metrics`` rows with their uncertainty, and model comparisons with verdicts.

Every evaluated figure carries a 95 % bootstrap interval over users; every comparison of the
trained model with another algorithm carries the paired interval of the difference (same
resampled users for both) and a verdict: "beats" only where that interval excludes 0.
A row whose ``reference`` is null holds a metric's value; a row with a reference holds
``value(algorithm) - value(reference)`` on the same split.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shopperlake.core.config import Config
from shopperlake.core.errors import ConfigError
from shopperlake.core.lake import Lake
from shopperlake.core.schemas import MODEL_METRICS
from shopperlake.training.bootstrap import (
    IndexStat,
    Interval,
    interval,
    paired_difference,
    verdict,
)

KEYS = ("model", "version", "algorithm", "split", "metric", "reference")
# Metrics where a smaller value is better; every other metric reads "higher is better".
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece", "brier_raw", "ece_raw", "wape", "mase"})


@dataclass(frozen=True)
class BootstrapSettings:
    """``evaluation.bootstrap`` in config: resamples (>= 200 for reported figures), seed, level."""

    resamples: int = 200
    seed: int = 7
    level: float = 0.95

    @classmethod
    def from_config(cls, cfg: Config) -> BootstrapSettings:
        block = cfg.get("evaluation.bootstrap") or {}
        settings = cls(
            resamples=int(block.get("resamples", 200)),
            seed=int(block.get("seed", 7)),
            level=float(block.get("level", 0.95)),
        )
        if settings.resamples < 1:
            raise ConfigError("evaluation.bootstrap.resamples must be >= 1")
        if not 0 < settings.level < 1:
            raise ConfigError("evaluation.bootstrap.level must be in (0, 1)")
        return settings


@dataclass(frozen=True)
class Comparison:
    """Intervals per ``algorithm -> metric`` and paired differences ``model - reference``."""

    model: str
    split: str
    intervals: dict[str, dict[str, Interval]]
    differences: dict[str, dict[str, Interval]]

    def verdicts(self) -> dict[str, dict[str, str]]:
        return {
            ref: {m: verdict(d, m not in LOWER_IS_BETTER) for m, d in by_metric.items()}
            for ref, by_metric in self.differences.items()
        }


def compare(
    stats: Mapping[str, Mapping[str, IndexStat]],
    n_rows: int,
    model: str,
    split: str,
    settings: BootstrapSettings,
    groups: Sequence[Any] | np.ndarray | None = None,
) -> Comparison:
    """Bootstrap every ``stats[algorithm][metric]`` over the same ``n_rows`` rows (whole
    ``groups`` per draw when given) and pair ``model`` with every other algorithm."""
    if model not in stats:
        raise ValueError(f"compare: model '{model}' is not among {sorted(stats)}")
    options: dict[str, Any] = {
        "groups": groups,
        "n_resamples": settings.resamples,
        "seed": settings.seed,
        "level": settings.level,
    }
    intervals = {
        algo: {metric: interval(stat, n_rows, **options) for metric, stat in by_metric.items()}
        for algo, by_metric in stats.items()
    }
    differences = {
        ref: {
            metric: paired_difference(stats[model][metric], stat, n_rows, **options)
            for metric, stat in by_metric.items()
            if metric in stats[model]
        }
        for ref, by_metric in stats.items()
        if ref != model
    }
    return Comparison(model, split, intervals, differences)


def metric_row(
    model: str,
    version: str,
    algorithm: str,
    split: str,
    metric: str,
    value: float,
    run_id: str,
    at: dt.datetime,
    ci: Interval | None = None,
    reference: str | None = None,
) -> tuple[Any, ...]:
    """One ``gold.model_metrics`` row in schema order (an interval without bounds, NaN, is
    stored without them: null)."""
    low, high = (ci.low, ci.high) if ci is not None else (None, None)
    if low is not None and high is not None and (math.isnan(low) or math.isnan(high)):
        low, high = None, None
    value = float(value)
    return (model, version, algorithm, split, metric, value, low, high, reference, at, run_id)


def comparison_rows(
    name: str, version: str, comparison: Comparison, run_id: str, at: dt.datetime
) -> list[tuple[Any, ...]]:
    """Value rows (with intervals) and difference rows (with paired intervals)."""
    rows = [
        metric_row(name, version, algo, comparison.split, metric, ci.estimate, run_id, at, ci)
        for algo, by_metric in comparison.intervals.items()
        for metric, ci in by_metric.items()
    ]
    rows += [
        metric_row(
            name, version, comparison.model, comparison.split, metric, d.estimate, run_id, at, d,
            reference=ref,
        )
        for ref, by_metric in comparison.differences.items()
        for metric, d in by_metric.items()
    ]  # fmt: skip
    return rows


def comparison_table(comparison: Comparison, metrics: Sequence[str]) -> str:
    """Plain text: each algorithm's values with intervals, then ``model`` vs each other one."""
    width = 34
    name = max([12, *(len(a) + 2 for a in (*comparison.intervals, *comparison.differences))])
    header = f"{'algorithm':<{name}}" + "".join(f"{m:>{width}}" for m in metrics)
    lines = [f"{comparison.split}: value [95% interval]", header]
    for algo, by_metric in comparison.intervals.items():
        cells = "".join(f"{str(by_metric[m]) if m in by_metric else '':>{width}}" for m in metrics)
        lines.append(f"{algo:<{name}}{cells}")
    lines.append(f"{comparison.model} minus ... (paired): difference [interval] verdict")
    verdicts = comparison.verdicts()
    for ref, by_metric in comparison.differences.items():
        texts = [
            f"{_signed(by_metric[m])} {verdicts[ref][m]}" if m in by_metric else "" for m in metrics
        ]
        cells = "".join(f"{t:>{width}}" for t in texts)
        lines.append(f"{ref:<{name}}{cells}")
    return "\n".join(lines)


def _signed(d: Interval) -> str:
    return f"{d.estimate:+.4f} [{d.low:+.4f}, {d.high:+.4f}]"


def write_metrics(lake: Lake, rows: Sequence[tuple[Any, ...]]) -> None:
    """MERGE rows into ``gold.model_metrics`` on its key (re-running replaces, adds nothing)."""
    lake.merge("gold.model_metrics", lake.spark.createDataFrame(list(rows), MODEL_METRICS), KEYS)
