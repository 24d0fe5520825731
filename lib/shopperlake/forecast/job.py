"""``forecast --as-of D --level item|category [--horizon H]`` → ``gold.demand_forecasts``;
``backtest [--level ...]`` → ``gold.forecast_backtests`` and ``gold.model_metrics``.

Both fit the local models of :mod:`shopperlake.forecast.local` with
``groupBy(bucket).applyInPandas``: series are hashed into ``forecast.buckets`` buckets, each
bucket is one pandas call on an executor, so the fitting scales with the executors' cores.
``forecast`` uses history up to the end of D and forecasts D+1 .. D+H; ``backtest`` runs the
README protocol (``forecast.backtest``): every origin trained on the days before it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from shopperlake.core.cli import Job, JobContext
from shopperlake.core.errors import InputError
from shopperlake.forecast.evaluate import (
    COVERAGE,
    PAIRED_METRICS,
    SELECTED,
    aligned,
    compare_methods,
    series_scores,
)
from shopperlake.forecast.global_model import global_candidates
from shopperlake.forecast.local import FALLBACK, OUTPUT_DDL, LocalSpec, dense, forecast_bucket
from shopperlake.forecast.series import (
    catalog,
    daily_demand,
    first_purchase_day,
    promotions_daily,
    purchases,
    select_series,
)
from shopperlake.forecast.spec import LEVELS, ForecastSettings, forecast_settings, model_version
from shopperlake.training.model_metrics import (
    BootstrapSettings,
    comparison_rows,
    comparison_table,
    metric_row,
    write_metrics,
)

log = logging.getLogger(__name__)
FORECASTS = "gold.demand_forecasts"
BACKTESTS = "gold.forecast_backtests"


def fit_local(sparse: DataFrame, spec: LocalSpec, buckets: int) -> DataFrame:
    """Every candidate's forecast rows (:data:`OUTPUT_DDL`) for the series of ``sparse``."""
    keyed = sparse.withColumn("_bucket", F.pmod(F.xxhash64("series_id"), F.lit(buckets)))
    # an explicit partition count: adaptive execution would coalesce the small demand
    # frame into one partition, and one task would fit every bucket in turn
    keyed = keyed.repartition(buckets, "_bucket")

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        return forecast_bucket(pdf, spec)

    return keyed.groupBy("_bucket").applyInPandas(run, schema=OUTPUT_DDL)


def choose_per_level(rows: DataFrame) -> DataFrame:
    """``rows`` (every candidate of every series) with ``chosen`` set for one candidate per
    origin: the lowest validation MAE pooled over the series that have every candidate (the
    same validation days each, so the sum orders like the pooled WAPE; ties by name);
    fallback series keep their fallback."""
    scored = rows.where((F.col("step") == 1) & (F.col("method") != F.lit(FALLBACK)))
    pooled = scored.groupBy("origin", "method").agg(
        F.sum("validation_mae").alias("_mae"), F.count(F.lit(1)).alias("_n")
    )
    full = pooled.groupBy("origin").agg(F.max("_n").alias("_full"))
    best = (
        pooled.join(full, "origin")
        .where(F.col("_n") == F.col("_full"))
        .withColumn(
            "_rank", F.row_number().over(Window.partitionBy("origin").orderBy("_mae", "method"))
        )
        .where(F.col("_rank") == 1)
        .select("origin", F.col("method").alias("_best"))
    )
    return (
        rows.join(F.broadcast(best), "origin", "left")
        .withColumn(
            "chosen",
            F.when(F.col("method") == F.lit(FALLBACK), F.lit(True)).otherwise(
                F.col("method") == F.col("_best")
            ),
        )
        .drop("_best")
    )


def fit(
    sparse: DataFrame, spec: LocalSpec, settings: ForecastSettings
) -> tuple[DataFrame, DataFrame]:
    """Every candidate's forecasts, ``chosen`` per series or per level (``forecast.choice``),
    and the cached fit they come from (unpersist it once the forecasts are written).

    The fit is cached and materialised here: the level choice reads it twice (the pooled
    errors and the rows) and the backtest scores twice again (every candidate and the chosen
    one), and each read of an uncached ``applyInPandas`` runs every model fit again."""
    rows = fit_local(sparse, spec, settings.buckets).persist(StorageLevel.MEMORY_AND_DISK)
    rows.count()
    return (choose_per_level(rows) if settings.choice == "level" else rows), rows


def promotion_matrix(
    promotions: DataFrame | None, ids: list[str], days: pd.DatetimeIndex
) -> np.ndarray | None:
    """series x days x (display, mailer) counts of ``promotions`` (0 where none); None when
    there is no promotions table or it holds nothing for these series and days."""
    if promotions is None:
        return None
    pdf: pd.DataFrame = promotions.toPandas()
    pdf = pdf[pdf["series_id"].astype(str).isin(set(ids))]
    if pdf.empty:
        return None
    out = np.zeros((len(ids), len(days), 2))
    row = pd.Index(ids).get_indexer(pdf["series_id"].astype(str))
    col = pd.DatetimeIndex(pd.to_datetime(pdf["ds"])).normalize()
    at = days.get_indexer(col)
    keep = at >= 0
    out[row[keep], at[keep], 0] = pdf["display"].to_numpy()[keep]
    out[row[keep], at[keep], 1] = pdf["mailer"].to_numpy()[keep]
    return out


def global_forecasts(
    sparse: DataFrame,
    settings: ForecastSettings,
    start: dt.date,
    origins: tuple[dt.date, ...],
    horizon: int,
    promotions: DataFrame | None = None,
) -> dict[tuple[str, dt.date], tuple[np.ndarray, np.ndarray]] | None:
    """The global model's validation forecasts and forecasts per (series, origin), fitted on
    the driver (the dense series of a level fit in its memory: 500 series x 365 days are
    180k numbers); None when ``forecast.global.enabled`` is off. ``promotions``:
    :func:`promotions_daily` of the series, used when ``forecast.global.promotions``."""
    spec = settings.global_spec(horizon)
    if spec is None:
        return None
    pdf: pd.DataFrame = sparse.select("series_id", "ds", "y").toPandas()
    last = max(origins) - dt.timedelta(days=1)
    ids = sorted(str(i) for i in pdf["series_id"].unique())
    matrix = dense(pdf, start, last, ids)["y"].to_numpy().reshape(len(ids), -1)
    days = pd.date_range(start, max(origins) + dt.timedelta(days=horizon), freq="D")
    exog = promotion_matrix(promotions, ids, days) if spec.promotions else None
    log.info(
        "global model: %d series, promotions %s",
        len(ids),
        "used" if exog is not None else "off" if not spec.promotions else "none found",
    )
    out: dict[tuple[str, dt.date], tuple[np.ndarray, np.ndarray]] = {}
    fitted: dict[int, np.ndarray] = {}
    for origin in origins:
        at = (origin - start).days
        found = global_candidates(
            ids, matrix, days, at, settings.validation_windows, spec, exog, fitted
        )
        out.update({(sid, origin): v for sid, v in found.items()})
    return out


def level_series(
    ctx: JobContext,
    settings: ForecastSettings,
    level: str,
    start: dt.date,
    last: dt.date,
    items_as_of: dt.date,
    selection: tuple[dt.date, dt.date],
    sources: Sequence[str] | None,
) -> tuple[DataFrame, int]:
    """Daily demand (sparse) of the series ``level`` forecasts, and how many series."""
    rule = settings.level(level)
    lines = purchases(ctx.lake, start, last, sources)
    demand = daily_demand(
        lines, catalog(ctx.lake, items_as_of), level, settings.exclude_departments
    ).persist(StorageLevel.MEMORY_AND_DISK)
    chosen = select_series(demand, rule, *selection).select("series_id")
    sparse = demand.join(F.broadcast(chosen), on="series_id").persist(StorageLevel.MEMORY_AND_DISK)
    n = sparse.select("series_id").distinct().count()
    demand.unpersist()
    if n == 0:
        raise InputError(
            f"no {level} series to forecast: no purchases of {start} .. {last} "
            f"(sources {', '.join(sources) if sources else 'all'}) meet forecast.levels.{level}"
        )
    return sparse, n


def level_promotions(
    ctx: JobContext,
    settings: ForecastSettings,
    level: str,
    first: dt.date,
    last: dt.date,
    items_as_of: dt.date,
    sources: Sequence[str] | None,
) -> DataFrame | None:
    """The promotions of ``level``'s series over ``[first, last]`` (None: not used or no
    ``bronze.promotions``). ``last`` may lie after the history: promotions are planned."""
    spec = settings.global_spec(settings.horizon)
    if spec is None or not spec.promotions:
        return None
    return promotions_daily(ctx.lake, catalog(ctx.lake, items_as_of), level, first, last, sources)


def add_forecast_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--level", required=True, help=f"series level: {' | '.join(LEVELS)}")
    parser.add_argument("--horizon", type=int, default=None, help="days (forecast.horizon)")
    parser.add_argument(
        "--source", action="append", default=None,
        help="bronze.events source (repeatable; default forecast.sources)",
    )  # fmt: skip


def write_forecasts(
    ctx: JobContext,
    settings: ForecastSettings,
    sparse: DataFrame,
    level: str,
    start: dt.date,
    horizon: int,
    sources: Sequence[str] | None,
) -> float:
    """Fit every candidate on ``sparse`` (history up to ``--as-of``), write the chosen
    forecasts of D+1 .. D+horizon to :data:`FORECASTS`; the seconds it took. The cached fit
    is released whether or not the write succeeds."""
    as_of = ctx.as_of
    assert as_of is not None
    version = model_version(settings, horizon)
    began = time.perf_counter()
    origins = (as_of + dt.timedelta(days=1),)
    promotions = level_promotions(
        ctx, settings, level, start, as_of + dt.timedelta(days=horizon), as_of, sources
    )
    with ctx.progress.stage("global model"):
        external = global_forecasts(sparse, settings, start, origins, horizon, promotions)
    spec = settings.local(start, origins, horizon, with_actuals=False, external=external)
    with ctx.progress.stage("local models per series (statsforecast)"):
        fitted, cached = fit(sparse, spec, settings)
    try:
        out = fitted.where(F.col("chosen")).select(
            F.lit(level).alias("level"),
            "series_id",
            F.lit(as_of).alias("as_of_date"),
            "target_date",
            "step",
            "forecast",
            "lo_80",
            "hi_80",
            "lo_95",
            "hi_95",
            "method",
            F.nanvl("validation_mae", F.lit(None).cast("double")).alias("validation_mae"),
            F.lit(version).alias("model_version"),
        )
        ctx.lake.overwrite_where(FORECASTS, out, {"as_of_date": as_of, "level": level})
    finally:
        cached.unpersist()
    return time.perf_counter() - began


def forecast_body(ctx: JobContext) -> int:
    if ctx.as_of is None:
        raise InputError("forecast needs --as-of YYYY-MM-DD (the last day of history)")
    as_of, level = ctx.as_of, ctx.args.level
    settings = forecast_settings(ctx.cfg)
    settings.level(level)
    horizon = settings.check_horizon(
        settings.horizon if ctx.args.horizon is None else ctx.args.horizon
    )
    sources = tuple(ctx.args.source) if ctx.args.source else settings.sources
    first = first_purchase_day(ctx.lake, as_of, sources)
    if first is None:
        raise InputError(
            f"no purchase events up to {as_of} (sources {', '.join(sources or ['all'])}): "
            "ingest first"
        )
    start = max(first, as_of - dt.timedelta(days=settings.history_days - 1))
    selection = (max(start, as_of - dt.timedelta(days=settings.selection_days - 1)), as_of)
    with ctx.progress.stage(f"{level} series") as stage:
        sparse, n = level_series(ctx, settings, level, start, as_of, as_of, selection, sources)
        stage.rows = n
    version = model_version(settings, horizon)
    try:
        seconds = write_forecasts(ctx, settings, sparse, level, start, horizon, sources)
    finally:
        sparse.unpersist()
    written_rows = ctx.lake.read(FORECASTS).where(
        (F.col("as_of_date") == F.lit(as_of)) & (F.col("level") == F.lit(level))
    )
    written = written_rows.count()
    methods = {
        r["method"]: int(r["count"])
        for r in written_rows.where("step = 1").groupBy("method").count().collect()
    }
    ctx.run.rows_read = n
    ctx.run.rows_written = written
    ctx.run.metrics.update(
        {"series": float(n), "horizon": float(horizon), "fit_seconds": seconds,
         **{f"method.{m}": float(c) for m, c in methods.items()}}
    )  # fmt: skip
    print(
        f"{level} forecasts as of {as_of}: {n:,} series x {horizon} days ({version}), "
        f"fitted and written in {seconds:.1f} s; "
        f"methods chosen: {', '.join(f'{m} {c}' for m, c in sorted(methods.items()))}"
        + (f" ({methods[FALLBACK]} with too little history)" if FALLBACK in methods else ""),
        flush=True,
    )
    return n


def add_backtest_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--level", action="append", default=None,
        help="series level (repeatable; default every configured level)",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="do not print the comparison")


def backtest_level(
    ctx: JobContext, settings: ForecastSettings, level: str, boot: BootstrapSettings
) -> str:
    origins = settings.backtest_origins
    horizon = settings.horizon
    last = origins[-1] + dt.timedelta(days=horizon - 1)
    # categories as they were known the day before the first test window
    items_as_of = origins[0] - dt.timedelta(days=1)
    sparse, n = level_series(
        ctx, settings, level, settings.backtest_start, last, items_as_of,
        settings.backtest_selection, settings.backtest_sources,
    )  # fmt: skip
    began = time.perf_counter()
    try:
        promotions = level_promotions(
            ctx, settings, level, settings.backtest_start, last + dt.timedelta(days=1),
            items_as_of, settings.backtest_sources,
        )  # fmt: skip
        with ctx.progress.stage(f"{level} global model, {len(origins)} origins"):
            external = global_forecasts(
                sparse, settings, settings.backtest_start, origins, horizon, promotions
            )
        spec = settings.local(
            settings.backtest_start, origins, horizon, with_actuals=True, external=external
        )
        with ctx.progress.stage(f"{level} local models per series and origin") as stage:
            fitted, cached = fit(sparse, spec, settings)
            stage.rows = n
        try:
            table = series_scores(fitted).select(
                F.lit(level).alias("level"), "series_id", "origin", "method", "chosen_method",
                "horizon", "demand", "abs_error", "wape", "scale", "mase", "coverage_80",
                "coverage_95", F.lit(ctx.run.run_id).alias("run_id"),
            )  # fmt: skip
            ctx.lake.overwrite_where(BACKTESTS, table, {"level": level})
        finally:
            cached.unpersist()
    finally:
        sparse.unpersist()
    seconds = time.perf_counter() - began
    local: pd.DataFrame = ctx.lake.read(BACKTESTS).where(F.col("level") == F.lit(level)).toPandas()
    pooled, series, left_out = aligned(local)
    split = f"backtest_{level}"
    comparison, coverage = compare_methods(pooled, series, split, boot)
    version = model_version(settings, horizon)
    at = ctx.run.started_at
    model = f"forecast_{level}"
    rows = comparison_rows(model, version, comparison, ctx.run.run_id, at)
    rows += [
        metric_row(model, version, m, split, k, ci.estimate, ctx.run.run_id, at, ci)
        for m, by in coverage.items()
        for k, ci in by.items()
    ]
    write_metrics(ctx.lake, rows)
    ctx.run.metrics.update(
        {f"{level}.series": float(n), f"{level}.fit_seconds": seconds,
         f"{level}.rows_left_out": float(left_out),
         **{f"{level}.{m}.{k}": ci.estimate for m, by in comparison.intervals.items()
            for k, ci in by.items()}}
    )  # fmt: skip
    chosen = local[local["method"] == SELECTED]["chosen_method"].value_counts()
    lines = [
        f"{level}: {n:,} series x {len(origins)} origins ({', '.join(map(str, origins))}), "
        f"horizon {horizon}; fitted in {seconds:.0f} s",
        comparison_table(comparison, list(PAIRED_METRICS)),
        "interval coverage (nominal 0.80 / 0.95):",
        *(f"  {m:<24}" + "".join(f"{coverage[m][k]!s:>30}" for k in COVERAGE) for m in coverage),
        f"chosen ({settings.choice}), series x origins: "
        + ", ".join(f"{m} {c}" for m, c in chosen.items()),
    ]
    if left_out:
        lines.append(
            f"({left_out} series x origin rows with too little history ({FALLBACK}) are "
            "in the table but not in the comparison)"
        )
    return "\n".join(lines)


def backtest_body(ctx: JobContext) -> None:
    settings = forecast_settings(ctx.cfg)
    levels = ctx.args.level or list(settings.levels)
    for level in levels:
        settings.level(level)
    boot = BootstrapSettings.from_config(ctx.cfg)
    for level in levels:
        text = backtest_level(ctx, settings, level, boot)
        if not ctx.args.quiet:
            print(text, flush=True)


FORECAST = Job(
    name="forecast",
    description="Daily demand forecasts per item or category with conformal intervals "
    "(statsforecast local models and a global XGBoost model, chosen on validation windows).",
    add_args=add_forecast_args,
    body=forecast_body,
    reads=("bronze.events", "bronze.items", "bronze.promotions"),
    writes=(FORECASTS,),
)

BACKTEST = Job(
    name="backtest",
    description="Rolling-origin backtest of every forecasting method and the per-series "
    "choice (forecast.backtest): WAPE, MASE, interval coverage with bootstrap intervals.",
    add_args=add_backtest_args,
    body=backtest_body,
    reads=("bronze.events", "bronze.items", "bronze.promotions"),
    writes=(BACKTESTS, "gold.model_metrics"),
)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return FORECAST.main(argv, spark)
