"""Bootstrap intervals for every reported figure and every model comparison.

Evaluation sets here are small enough to hold on the driver (one score per user, or one
per-user metric value per list), so resampling runs in numpy. Units are resampled with
replacement, users by default; where one user owns several rows (order lines, cutoffs) pass
``groups`` so that a resample draws whole users (a row bootstrap would understate the noise).

- :func:`interval` — percentile interval of one statistic.
- :func:`paired_difference` — the same resamples applied to two models' statistics, so the
  interval is for ``stat(a) - stat(b)`` on the same users: the comparison that says whether
  one model is better than another.
- :func:`verdict` — "beats" / "on par" / "worse": "beats" only where the paired interval
  excludes 0 in the model's favour.

A resample on which the statistic is undefined (e.g. ROC-AUC of a resample with one class)
is skipped; more than 5 % skipped is an error, because the interval would then describe a
different population.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

IndexStat = Callable[[np.ndarray], float]
DEFAULT_RESAMPLES = 200
MAX_SKIPPED_SHARE = 0.05


@dataclass(frozen=True)
class Interval:
    """A point estimate on all units and the percentile bootstrap interval around it."""

    estimate: float
    low: float
    high: float
    level: float
    resamples: int

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        if math.isnan(self.low) or math.isnan(self.high):
            return f"{self.estimate:.4f} [no interval: too few units]"
        return f"{self.estimate:.4f} [{self.low:.4f}, {self.high:.4f}]"


def _check_level(level: float, n_resamples: int) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")


class Resampler:
    """Seeded resamples of row indices, drawing whole groups when ``groups`` is given."""

    def __init__(self, n_rows: int, groups: Sequence[Any] | np.ndarray | None = None) -> None:
        if n_rows < 1:
            raise ValueError("bootstrap needs at least one row")
        self.n_rows = n_rows
        if groups is None:
            self._order: np.ndarray | None = None
            self.n_units = n_rows
            return
        keys = np.asarray(groups)
        if keys.shape != (n_rows,):
            raise ValueError(f"groups has shape {keys.shape}, expected ({n_rows},)")
        _, codes = np.unique(keys, return_inverse=True)
        self._order = np.argsort(codes, kind="stable")
        sizes = np.bincount(codes)
        self._starts = np.r_[0, np.cumsum(sizes)[:-1]]
        self._sizes = sizes
        self.n_units = int(sizes.size)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        units = rng.integers(0, self.n_units, self.n_units)
        if self._order is None:
            return units
        sizes = self._sizes[units]
        starts = self._starts[units]
        # Row positions start..start+size-1 of each drawn group, without a Python loop.
        offsets = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        return self._order[np.repeat(starts, sizes) + offsets]


def _percentiles(values: list[float], level: float) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    alpha = (1 - level) / 2
    return float(np.quantile(arr, alpha)), float(np.quantile(arr, 1 - alpha))


def _resampled(
    stats: Sequence[IndexStat],
    n_rows: int,
    groups: Sequence[Any] | np.ndarray | None,
    n_resamples: int,
    seed: int,
) -> list[list[float]]:
    """``stats`` evaluated on the same resamples (one list of values per statistic)."""
    sampler = Resampler(n_rows, groups)
    rng = np.random.default_rng(seed)
    out: list[list[float]] = [[] for _ in stats]
    skipped = 0
    for _ in range(n_resamples):
        idx = sampler.draw(rng)
        try:
            values = [float(stat(idx)) for stat in stats]
        except ValueError:  # undefined on this resample (e.g. one class only)
            skipped += 1
            continue
        if not all(math.isfinite(v) for v in values):
            skipped += 1
            continue
        for acc, v in zip(out, values, strict=True):
            acc.append(v)
    if skipped > MAX_SKIPPED_SHARE * n_resamples:
        raise ValueError(
            f"bootstrap: the statistic is undefined on {skipped} of {n_resamples} resamples "
            f"({sampler.n_units} units): too few units, or too few of one class"
        )
    return out


def interval(
    stat: IndexStat,
    n_rows: int,
    *,
    groups: Sequence[Any] | np.ndarray | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Percentile interval of ``stat(row indices)``; the estimate is ``stat(all rows)``."""
    _check_level(level, n_resamples)
    estimate = float(stat(np.arange(n_rows)))
    (values,) = _resampled([stat], n_rows, groups, n_resamples, seed)
    low, high = _percentiles(values, level)
    return Interval(estimate, low, high, level, len(values))


def paired_difference(
    stat_a: IndexStat,
    stat_b: IndexStat,
    n_rows: int,
    *,
    groups: Sequence[Any] | np.ndarray | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Interval of ``stat_a - stat_b`` with both evaluated on each resample's same rows."""
    _check_level(level, n_resamples)
    everything = np.arange(n_rows)
    estimate = float(stat_a(everything)) - float(stat_b(everything))
    a, b = _resampled([stat_a, stat_b], n_rows, groups, n_resamples, seed)
    low, high = _percentiles([x - y for x, y in zip(a, b, strict=True)], level)
    return Interval(estimate, low, high, level, len(a))


def metric_stat(metric: Callable[[Any, Any], float], y: Any, p: Any) -> IndexStat:
    """``metric(y[idx], p[idx])`` as an index statistic (``metric`` like ``roc_auc``)."""
    labels, scores = np.asarray(y), np.asarray(p)
    return lambda idx: metric(labels[idx], scores[idx])


def mean_stat(values: Any) -> IndexStat:
    """Mean of ``values[idx]``: per-user metrics (recall@k, NDCG@k) averaged over users."""
    arr = np.asarray(values, dtype=np.float64)
    return lambda idx: float(arr[idx].mean())


def verdict(diff: Interval, higher_is_better: bool = True) -> str:
    """ "beats" only where the paired interval excludes 0 in the model's favour."""
    if not diff.excludes_zero():
        return "on par"
    better = diff.low > 0 if higher_is_better else diff.high < 0
    return "beats" if better else "worse"
