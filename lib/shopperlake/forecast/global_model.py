"""One global model across all series: gradient-boosted trees (XGBoost) that forecast each of
the next ``horizon`` days directly from features known at the forecast origin.

Direct, not recursive: the model for day ``origin + k - 1`` sees the step ``k`` as a feature
and never its own earlier predictions, so errors cannot feed back and run away. As a second
guard every forecast is cut at ``max_to_history_max`` times the largest day of the series'
history.

Features per series, origin and step (levels divided by the series' last-28-day mean, so one
model serves series of any size): step, target weekday, day of month and month; the means of
the last 7 and 91 days; the mean of the target's weekday over the last 4 weeks and its last
value; yesterday; the share of days without sales in the last 28; log of the 28-day mean.
The target is the day's units over the same scale; the loss is absolute error weighted by
the scale, i.e. the pooled WAPE the backtest reports.

Promotions (``exog``, optional: per series and day, how many of its item × store pairs are on
display and in the mailer, from ``bronze.promotions``) are known in advance: a shop plans them,
so the features of a target day include that day's promotions (log counts, and the count
relative to the series' mean over the 28 days before the origin). On The Complete Journey's
top 500 products they take the global model's pooled WAPE from 0.713 to 0.657 (README).

Training rows for a forecast made at ``cutoff`` come from earlier origins every
``train_every_days`` days whose whole ``horizon`` window ends before ``cutoff``: nothing on
or after the cutoff enters the fit (the history is sliced before anything is computed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

NAME = "global_gbm"


@dataclass(frozen=True)
class GlobalSpec:
    horizon: int
    rounds: int = 200
    eta: float = 0.1
    max_depth: int = 6
    train_every_days: int = 7
    min_train_days: int = 91
    max_to_history_max: float = 3.0
    seed: int = 7
    threads: int = 2
    promotions: bool = True


def features(
    history: np.ndarray,
    days: pd.DatetimeIndex,
    horizon: int,
    exog: np.ndarray | None = None,
) -> np.ndarray:
    """Feature rows for forecasting the ``horizon`` days after ``history`` (series × days,
    the last column the day before the origin): ``(horizon * series) × features``, step-major;
    ``days``: the dates of the history's columns and beyond; ``exog``: series × days (the same
    columns as ``days``) × k known-in-advance counts (promotions), or None."""
    n, t = history.shape
    recent = None if exog is None else exog[:, max(0, t - 28) : t].mean(axis=1)
    scale = np.maximum(history[:, -28:].mean(axis=1), 1e-3)
    m7 = history[:, -7:].mean(axis=1) / scale
    m91 = history[:, -91:].mean(axis=1) / scale
    last = history[:, -1] / scale
    zeros = (history[:, -28:] == 0).mean(axis=1)
    level = np.log1p(scale)
    blocks = []
    for k in range(1, horizon + 1):
        target = days[t + k - 1]
        # the target's weekday in each of the last 4 weeks (the origin is column t, the
        # target column t + k - 1; the latest same weekday is t - 7 + (k - 1) mod 7)
        same = [t - 7 + (k - 1) % 7 - 7 * j for j in range(4)]
        same = [s for s in same if 0 <= s < t]
        sw = history[:, same].mean(axis=1) / scale if same else np.zeros(n)
        last_same = history[:, max(same)] / scale if same else np.zeros(n)
        blocks.append(
            np.column_stack(
                [
                    np.full(n, k),
                    np.full(n, target.weekday()),
                    np.full(n, target.day),
                    np.full(n, target.month),
                    m7,
                    m91,
                    sw,
                    last_same,
                    level,
                    last,
                    zeros,
                    *_exog_columns(exog, recent, t + k - 1),
                ]
            )
        )
    return np.vstack(blocks)


def _exog_columns(exog: np.ndarray | None, recent: np.ndarray | None, at: int) -> list[np.ndarray]:
    """Per known-in-advance count: its log on the target day and its ratio to the recent mean."""
    if exog is None or recent is None:
        return []
    now = exog[:, at]
    return [
        *(np.log1p(now[:, j]) for j in range(now.shape[1])),
        *((now[:, j] + 1.0) / (recent[:, j] + 1.0) for j in range(now.shape[1])),
    ]


def scale_of(history: np.ndarray) -> np.ndarray:
    return np.maximum(history[:, -28:].mean(axis=1), 1e-3)


def fit_predict(
    values: np.ndarray,
    days: pd.DatetimeIndex,
    cutoff: int,
    spec: GlobalSpec,
    exog: np.ndarray | None = None,
) -> np.ndarray:
    """Forecasts (series × horizon) for days ``cutoff .. cutoff + horizon - 1`` from
    ``values[:, :cutoff]`` only (and the known-in-advance ``exog`` of the days up to the
    forecast's last: later columns are never read)."""
    import xgboost as xgb

    past = values[:, :cutoff]
    h = spec.horizon
    xs, ys, ws = [], [], []
    for origin in range(spec.min_train_days, cutoff - h + 1, spec.train_every_days):
        hist = past[:, :origin]
        scale = scale_of(hist)
        xs.append(features(hist, days, h, exog))
        ys.append((past[:, origin : origin + h] / scale[:, None]).T.reshape(-1))
        ws.append(np.tile(scale, h))
    n = values.shape[0]
    scale = scale_of(past)
    if not xs:  # too little history for any training origin: the series' 28-day mean
        return np.repeat(scale[:, None], h, axis=1)
    train = xgb.DMatrix(np.vstack(xs), label=np.concatenate(ys), weight=np.concatenate(ws))
    params = {
        "objective": "reg:absoluteerror",
        "eta": spec.eta,
        "max_depth": spec.max_depth,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 5,
        "tree_method": "hist",
        "nthread": spec.threads,
        "seed": spec.seed,
    }
    booster = xgb.train(params, train, spec.rounds)
    ratio = booster.predict(xgb.DMatrix(features(past, days, h, exog))).reshape(h, n).T
    return guard(ratio * scale[:, None], past, spec.max_to_history_max)


def guard(forecasts: np.ndarray, past: np.ndarray, factor: float) -> np.ndarray:
    """Forecasts cut to ``[0, factor × the series' largest past day]`` (0 for a series that
    never sold)."""
    ceiling = factor * past.max(axis=1, initial=0.0)
    return np.clip(forecasts, 0.0, ceiling[:, None])


def global_candidates(
    ids: list[str],
    values: np.ndarray,
    days: pd.DatetimeIndex,
    origin: int,
    windows: int,
    spec: GlobalSpec,
    exog: np.ndarray | None = None,
    fitted: dict[int, np.ndarray] | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per series: the validation forecasts of the ``windows`` windows of ``horizon`` days
    just before ``origin`` (each fitted on the days before its window; oldest first) and the
    forecast from ``origin``. ``values``: series × days from ``days[0]``, at least up to
    ``origin`` (later columns are never read); ``exog``: see :func:`features`. ``fitted``:
    forecasts per cut-off shared by calls with the same ``values``/``exog``/``spec`` (rolling
    origins ``horizon`` days apart validate on the earlier origins' test windows, so each
    cut-off is fitted once)."""
    h = spec.horizon
    memo = {} if fitted is None else fitted

    def at(cutoff: int) -> np.ndarray:
        if cutoff not in memo:
            memo[cutoff] = fit_predict(values, days, cutoff, spec, exog)
        return memo[cutoff]

    val = np.concatenate([at(origin - h * w) for w in range(windows, 0, -1)], axis=1)
    fc = at(origin)
    return {sid: (val[i], fc[i]) for i, sid in enumerate(ids)}
