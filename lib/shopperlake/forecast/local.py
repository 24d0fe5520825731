"""Many local models: per-series statsforecast models, chosen per series on validation windows,
with conformal intervals — the pandas function that ``groupBy().applyInPandas`` runs once per
bucket of series on the executors.

For one origin (the first day to forecast) and one bucket of series:

1. every series is made dense over ``[start, origin)`` (days without a sale are 0);
2. series with fewer than ``min_history_days`` days since their first sale before the origin
   get the labelled fallback (``fallback_window_average``: the mean of the last
   ``window_size`` days, intervals from the empirical quantiles of those days);
3. the others: statsforecast forecasts of ``validation_windows`` windows of ``horizon`` days
   just before the origin (each fitted on the data before its window, as statsforecast's
   ``cross_validation`` does), then of the ``horizon`` days from the origin, fitted on all
   data before it. Every (series, first forecast day) is fitted once per bucket
   (:class:`Fits`): rolling origins ``horizon`` days apart share their validation windows
   with the earlier origins' test windows, so a backtest of 3 origins fits 5 cut-offs, not 9;
4. per series and method, the validation MAE and the 80 % / 95 % quantiles of the absolute
   validation errors (split-conformal intervals: forecast ± quantile, cut at 0); with
   ``ensemble``, the mean of the series' two best methods on validation is one more
   candidate; the candidate with the lowest validation MAE is the series' choice.

Nothing after ``origin - 1`` enters a fit, a choice or an interval; ``actual`` (backtests) is
attached only to the output rows.

Closing days (``closed_days``: ``MM-DD`` every year or one ``YYYY-MM-DD``; the shop knows
them in advance, like its promotions) get 0 with a [0, 0] interval from every candidate, in
the validation windows too, so the choice and the intervals see what will be served.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shopperlake.core.calendar import closed_mask

FALLBACK = "fallback_window_average"
ENSEMBLE = "ensemble_top2"
METHOD_NAMES = ("seasonal_naive", "window_average", "auto_ets", "croston_sba", "tsb", "auto_arima")
OUTPUT_COLUMNS = {
    "series_id": "string",
    "origin": "date",
    "target_date": "date",
    "step": "int",
    "method": "string",
    "chosen": "boolean",
    "forecast": "double",
    "lo_80": "double",
    "hi_80": "double",
    "lo_95": "double",
    "hi_95": "double",
    "validation_mae": "double",
    "scale": "double",
    "actual": "double",
}
OUTPUT_DDL = ", ".join(f"{c} {t}" for c, t in OUTPUT_COLUMNS.items())


@dataclass(frozen=True)
class LocalSpec:
    """What one bucket call needs (picklable: it travels to the executors)."""

    start: dt.date
    origins: tuple[dt.date, ...]
    horizon: int
    methods: tuple[str, ...]
    season_length: int = 7
    window_size: int = 28
    validation_windows: int = 2
    min_history_days: int = 84
    ensemble: bool = True
    with_actuals: bool = False
    # forecasts of a model fitted elsewhere (the global model, on the driver), one more
    # candidate: (series, origin) -> (validation forecasts of the validation windows, oldest
    # first; forecasts from the origin)
    external: Mapping[tuple[str, dt.date], tuple[np.ndarray, np.ndarray]] | None = None
    external_name: str = "global_gbm"
    closed_days: tuple[str, ...] = ()  # MM-DD (every year) or YYYY-MM-DD: demand is 0

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHOD_NAMES]
        if unknown or not self.methods:
            raise ValueError(
                f"unknown forecast method(s) {unknown or '(none given)'}: "
                f"choose from {', '.join(METHOD_NAMES)}"
            )


def models(spec: LocalSpec) -> list[Any]:
    """The statsforecast model objects of ``spec.methods`` (aliases = our method names)."""
    os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
    from statsforecast.models import (
        TSB,
        AutoARIMA,
        AutoETS,
        CrostonSBA,
        SeasonalNaive,
        WindowAverage,
    )

    s = spec.season_length
    make = {
        "seasonal_naive": lambda: SeasonalNaive(season_length=s, alias="seasonal_naive"),
        "window_average": lambda: WindowAverage(
            window_size=spec.window_size, alias="window_average"
        ),
        "auto_ets": lambda: AutoETS(season_length=s, alias="auto_ets"),
        "croston_sba": lambda: CrostonSBA(alias="croston_sba"),
        "tsb": lambda: TSB(alpha_d=0.1, alpha_p=0.1, alias="tsb"),
        "auto_arima": lambda: AutoARIMA(season_length=s, alias="auto_arima"),
    }
    return [make[m]() for m in spec.methods]


def dense(
    sparse: pd.DataFrame, start: dt.date, end: dt.date, ids: Sequence[Any] | None = None
) -> pd.DataFrame:
    """``series_id, ds, y`` with every day of ``[start, end]`` for each series of ``ids``
    (default: those of ``sparse``), 0 where ``sparse`` has no row."""
    days = pd.date_range(start, end, freq="D")
    ids = sorted(sparse["series_id"].unique()) if ids is None else list(ids)
    index = pd.MultiIndex.from_product([ids, days], names=["series_id", "ds"])
    y = (
        sparse.assign(ds=pd.to_datetime(sparse["ds"]))
        .groupby(["series_id", "ds"])["y"]
        .sum()
        .reindex(index, fill_value=0.0)
    )
    return y.reset_index()


def seasonal_naive_scale(y: np.ndarray, season: int) -> float:
    """MASE's scale: the in-sample MAE of the seasonal naive forecast, mean |y_t - y_(t-s)|
    (nan when the series is not longer than one season)."""
    if len(y) <= season:
        return float("nan")
    return float(np.mean(np.abs(y[season:] - y[:-season])))


def conformal(abs_errors: np.ndarray) -> tuple[float, float]:
    """80 % and 95 % quantiles of absolute validation errors (the interval half-widths), with
    the finite-sample correction of split conformal prediction: the ceil((n+1)q)-th smallest."""
    e = np.sort(np.asarray(abs_errors, dtype=float))
    n = len(e)
    if n == 0:
        return float("nan"), float("nan")

    def q(level: float) -> float:
        k = int(np.ceil((n + 1) * level))
        return float(e[min(k, n) - 1])

    return q(0.80), q(0.95)


def _rows(
    sid: str,
    origin: dt.date,
    method: str,
    point: np.ndarray,
    half: tuple[float, ...],
    mae: float | None,
    scale: float,
    actual: np.ndarray | None,
) -> pd.DataFrame:
    h = len(point)
    point = np.maximum(np.asarray(point, dtype=float), 0.0)
    if len(half) == 2:
        q80, q95 = half
        lo80, hi80 = np.maximum(point - q80, 0.0), point + q80
        lo95, hi95 = np.maximum(point - q95, 0.0), point + q95
    else:
        lo80, hi80, lo95, hi95 = (np.full(h, v) for v in half)
    return pd.DataFrame(
        {
            "series_id": sid,
            "origin": origin,
            "target_date": [origin + dt.timedelta(days=i) for i in range(h)],
            "step": np.arange(1, h + 1, dtype="int32"),
            "method": method,
            "chosen": False,
            "forecast": point,
            "lo_80": lo80,
            "hi_80": hi80,
            "lo_95": lo95,
            "hi_95": hi95,
            "validation_mae": np.nan if mae is None else mae,
            "scale": scale,
            "actual": np.nan if actual is None else actual,
        }
    )


def fallback_rows(
    sid: str, history: np.ndarray, origin: dt.date, spec: LocalSpec, actual: np.ndarray | None
) -> pd.DataFrame:
    """The labelled fallback for a short series: the mean of the last ``window_size`` days
    since its first sale (0 without any), intervals from those days' empirical quantiles."""
    sold = np.flatnonzero(history > 0)
    recent = history[sold[0] :][-spec.window_size :] if len(sold) else np.zeros(1)
    point = np.full(spec.horizon, float(recent.mean()))
    lo80, hi80, lo95, hi95 = (float(np.quantile(recent, q)) for q in (0.1, 0.9, 0.025, 0.975))
    scale = seasonal_naive_scale(history, spec.season_length)
    out = _rows(sid, origin, FALLBACK, point, (lo80, hi80, lo95, hi95), None, scale, actual)
    out["chosen"] = True
    return out


def candidates(
    cv: pd.DataFrame, fc: pd.DataFrame, methods: Sequence[str], ensemble: bool
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Per candidate: its validation predictions (``unique_id, ds, y, pred``) and forecasts
    (``unique_id, ds, pred``); with ``ensemble``, the mean of each series' two best methods
    on validation MAE (ties: the order of ``methods``)."""
    methods = list(methods)
    val = {m: cv[["unique_id", "ds", "y"]].assign(pred=cv[m].to_numpy()) for m in methods}
    out = {m: fc[["unique_id", "ds"]].assign(pred=fc[m].to_numpy()) for m in methods}
    if ensemble and len(methods) >= 2:
        mae = (cv[methods].sub(cv["y"], axis=0)).abs().groupby(cv["unique_id"]).mean()
        top2 = pd.DataFrame(
            np.argsort(mae[methods].to_numpy(), axis=1, kind="stable")[:, :2], index=mae.index
        )

        def mean_of_best(frame: pd.DataFrame) -> np.ndarray:
            cols = top2.loc[frame["unique_id"]].to_numpy()
            values = frame[methods].to_numpy(dtype=float)
            return np.take_along_axis(values, cols, axis=1).mean(axis=1)

        val[ENSEMBLE] = cv[["unique_id", "ds", "y"]].assign(pred=mean_of_best(cv))
        out[ENSEMBLE] = fc[["unique_id", "ds"]].assign(pred=mean_of_best(fc))
    return val, out


class Fits:
    """statsforecast forecasts of ``spec.horizon`` days from a first day, each series fitted
    on the dense days before that day only, memoised per (series, first day): one bucket's
    rolling origins ask for the same windows again (statsforecast fits every series on its
    own, so a series' forecast does not depend on which others are fitted with it)."""

    def __init__(self, sparse: pd.DataFrame, spec: LocalSpec) -> None:
        self.sparse = sparse
        self.spec = spec
        self.done: dict[dt.date, pd.DataFrame] = {}
        self.fitted = 0  # series x first days fitted (tests and logs)

    def from_day(self, first: dt.date, ids: Sequence[str]) -> pd.DataFrame:
        """``unique_id, ds, <method>...`` for ``ids``, days ``first .. first + horizon - 1``."""
        from statsforecast import StatsForecast

        have = self.done.get(first)
        known = set() if have is None else set(have["unique_id"].astype(str))
        missing = [i for i in ids if i not in known]
        if missing:
            end = first - dt.timedelta(days=1)
            sub = self.sparse[self.sparse["series_id"].astype(str).isin(set(missing))]
            sub = sub[pd.to_datetime(sub["ds"]) <= pd.Timestamp(end)]
            train = dense(sub, self.spec.start, end, missing).rename(
                columns={"series_id": "unique_id"}
            )
            sf = StatsForecast(models=models(self.spec), freq="D", n_jobs=1)
            fc = sf.forecast(df=train, h=self.spec.horizon)
            fc["unique_id"] = fc["unique_id"].astype(str)
            self.fitted += len(missing)
            have = fc if have is None else pd.concat([have, fc], ignore_index=True)
            self.done[first] = have
        assert have is not None
        return have[have["unique_id"].isin(set(ids))].reset_index(drop=True)


def forecast_origin(
    sparse: pd.DataFrame,
    origin: dt.date,
    spec: LocalSpec,
    actuals: pd.DataFrame | None = None,
    fits: Fits | None = None,
) -> pd.DataFrame:
    """Every candidate's forecast of every series of ``sparse`` for ``origin`` (one bucket);
    ``fits``: the bucket's memo of statsforecast fits (a new one when None)."""
    if sparse.empty:
        return pd.DataFrame(columns=list(OUTPUT_COLUMNS))
    fits = Fits(sparse, spec) if fits is None else fits
    end = origin - dt.timedelta(days=1)
    ids = sorted(sparse["series_id"].unique())
    train = dense(sparse[pd.to_datetime(sparse["ds"]) <= pd.Timestamp(end)], spec.start, end, ids)
    actual = {} if actuals is None else {
        str(k): g["y"].to_numpy(dtype=float) for k, g in actuals.groupby("series_id")
    }  # fmt: skip
    parts: list[pd.DataFrame] = []
    long_ids: list[str] = []
    histories: dict[str, np.ndarray] = {}
    for sid, g in train.groupby("series_id", sort=True):
        y = g["y"].to_numpy(dtype=float)
        histories[str(sid)] = y
        sold = np.flatnonzero(y > 0)
        days = len(y) - int(sold[0]) if len(sold) else 0
        if days < spec.min_history_days:
            parts.append(fallback_rows(str(sid), y, origin, spec, actual.get(str(sid))))
        else:
            long_ids.append(str(sid))
    if long_ids:
        first_val = origin - dt.timedelta(days=spec.horizon * spec.validation_windows)
        observed = train.assign(unique_id=train["series_id"].astype(str))[["unique_id", "ds", "y"]]
        windows = [
            fits.from_day(first_val + dt.timedelta(days=spec.horizon * w), long_ids)
            for w in range(spec.validation_windows)
        ]
        cv = pd.concat(windows, ignore_index=True).merge(observed, on=["unique_id", "ds"])
        fc = fits.from_day(origin, long_ids)
        methods = list(spec.methods)
        if spec.external is not None:
            cv[spec.external_name] = _external(cv, spec.external, origin, first_val, 0)
            fc[spec.external_name] = _external(fc, spec.external, origin, origin, 1)
            methods.append(spec.external_name)
        for frame in (cv, fc):  # closing days: every candidate says 0
            frame.loc[closed_mask(frame["ds"], spec.closed_days), methods] = 0.0
        val, out = candidates(cv, fc, methods, spec.ensemble)
        val_by = {m: dict(tuple(v.groupby("unique_id"))) for m, v in val.items()}
        out_by = {m: dict(tuple(v.groupby("unique_id"))) for m, v in out.items()}
        for sid in long_ids:
            scale = seasonal_naive_scale(histories[sid], spec.season_length)
            rows, maes = [], []
            for method in val:
                v = val_by[method][sid]
                err = np.abs(v["pred"].to_numpy() - v["y"].to_numpy())
                maes.append(float(err.mean()))
                point = out_by[method][sid]["pred"].to_numpy()
                half = conformal(err)
                rows.append(
                    _rows(sid, origin, method, point, half, maes[-1], scale, actual.get(sid))
                )
            frame = pd.concat(rows, ignore_index=True)
            frame["chosen"] = frame["method"] == list(val)[int(np.argmin(maes))]
            parts.append(frame)
    result = pd.concat(parts, ignore_index=True)[list(OUTPUT_COLUMNS)]
    shut = closed_mask(result["target_date"], spec.closed_days)
    result.loc[shut, ["forecast", "lo_80", "hi_80", "lo_95", "hi_95"]] = 0.0
    return result


def _external(
    frame: pd.DataFrame,
    external: Mapping[tuple[str, dt.date], tuple[np.ndarray, np.ndarray]],
    origin: dt.date,
    first_day: dt.date,
    which: int,
) -> np.ndarray:
    """The external model's forecast for every row (``unique_id``, ``ds``) of ``frame``:
    ``which`` 0 = its validation forecasts (from ``first_day``), 1 = its forecasts."""
    offsets = (pd.to_datetime(frame["ds"]) - pd.Timestamp(first_day)).dt.days.to_numpy()
    out = np.empty(len(frame))
    for i, (sid, off) in enumerate(zip(frame["unique_id"].astype(str), offsets, strict=True)):
        key = (sid, origin)
        if key not in external:
            raise KeyError(f"no external forecast for series {sid!r} at origin {origin}")
        out[i] = external[key][which][off]
    return out


def forecast_bucket(sparse: pd.DataFrame, spec: LocalSpec) -> pd.DataFrame:
    """The ``applyInPandas`` function: ``sparse`` (``series_id, ds, y``: daily units, days
    without sales absent) → one row per series, origin, candidate method and target day."""
    sparse = sparse[["series_id", "ds", "y"]]
    fits = Fits(sparse, spec)
    frames = []
    for origin in spec.origins:
        actuals = None
        if spec.with_actuals:
            last = origin + dt.timedelta(days=spec.horizon - 1)
            window = sparse[
                (pd.to_datetime(sparse["ds"]) >= pd.Timestamp(origin))
                & (pd.to_datetime(sparse["ds"]) <= pd.Timestamp(last))
            ]
            actuals = dense(window, origin, last, sparse["series_id"].unique())
        frames.append(forecast_origin(sparse, origin, spec, actuals, fits))
    out = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=list(OUTPUT_COLUMNS))
    )
    return out.astype({"step": "int32", "chosen": "bool"})
