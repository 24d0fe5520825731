"""Demand forecasting: the Complete Journey adapter, the local models' choice and intervals,
the fallback, point in time, the backtest scores and bad input — on planted series whose
forecasts and errors are worked out by hand."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shopperlake.core.calendar import closed_mask
from shopperlake.core.lake import Lake
from shopperlake.forecast.global_model import GlobalSpec, fit_predict, global_candidates, guard
from shopperlake.forecast.job import choose_per_level
from shopperlake.forecast.local import (
    FALLBACK,
    OUTPUT_DDL,
    Fits,
    LocalSpec,
    conformal,
    dense,
    forecast_origin,
    seasonal_naive_scale,
)
from shopperlake.forecast.series import catalog, promotions_daily
from shopperlake.jobs import run
from tests.conftest import job_args

START = dt.date(2017, 1, 2)  # a Monday
DAYS = 112  # 16 weeks: 2017-01-02 .. 2017-04-23 (a Sunday)
AS_OF = dt.date(2017, 4, 23)
# SOUP units per weekday, Monday first: one P1 line a day, plus a P2 line of 2 on Saturdays
SOUP = [4, 1, 1, 1, 2, 8, 3]
P1 = [4, 1, 1, 1, 2, 6, 3]
FRUIT_FIRST = dt.date(2017, 4, 14)  # FRUIT sells 1, 2, ..., 10 on its last 10 days


def soup_units(day: dt.date) -> int:
    """Week one sells double (so the seasonal-naive scale is not 0), then the pattern."""
    return SOUP[day.weekday()] * (2 if (day - START).days < 7 else 1)


TRANSACTION_FIELDS = [
    "household_id", "store_id", "basket_id", "product_id", "quantity", "sales_value",
    "retail_disc", "coupon_disc", "coupon_match_disc", "week", "transaction_timestamp",
]  # fmt: skip


def write_complete_journey(folder: Path) -> None:
    """products.parquet and transactions.parquet in the wheel's schema (timestamps in us)."""
    folder.mkdir(parents=True)
    products = pd.DataFrame(
        {
            "product_id": [1, 2, 3, 4],
            "manufacturer_id": [10, 10, 20, 30],
            "department": ["GROCERY", "GROCERY", "FUEL", "PRODUCE"],
            "brand": ["National", "Private", "National", "Private"],
            "product_category": ["SOUP", "SOUP", "FUEL", "FRUIT"],
            "product_type": ["SOUP: CANNED", "SOUP: DRY", "GASOLINE", "APPLES"],
            "package_size": ["10 OZ", None, None, "3 LB"],
        }
    )
    rows = []
    for i in range(DAYS):
        day = START + dt.timedelta(days=i)
        ts = dt.datetime.combine(day, dt.time(12, 0))
        week_one = 2 if i < 7 else 1
        rows.append((1, 300, 1000 + i, 1, P1[day.weekday()] * week_one, 2.0, ts))
        if day.weekday() == 5:
            rows.append((2, 300, 5000 + i, 2, 2 * week_one, 3.0, ts))
        rows.append((3, 301, 9000 + i, 3, 50, 100.0, ts))  # fuel: never forecast
        if day >= FRUIT_FIRST:
            rows.append((1, 300, 1000 + i, 4, (day - FRUIT_FIRST).days + 1, 1.5, ts))
    rows.append((2, 300, 7777, 1, 0, 0.0, dt.datetime(2017, 2, 1, 9)))  # a void: quarantined
    tx = pd.DataFrame(
        rows,
        columns=["household_id", "store_id", "basket_id", "product_id", "quantity",
                 "sales_value", "transaction_timestamp"],
    )  # fmt: skip
    for col in ("retail_disc", "coupon_disc", "coupon_match_disc"):
        tx[col] = 0.0
    tx["week"] = 1
    tx = tx[TRANSACTION_FIELDS]
    pq.write_table(
        pa.Table.from_pandas(products, preserve_index=False), folder / "products.parquet"
    )
    table = pa.Table.from_pandas(tx, preserve_index=False)
    table = table.set_column(
        table.schema.get_field_index("transaction_timestamp"),
        "transaction_timestamp",
        table.column("transaction_timestamp").cast(pa.timestamp("us")),
    )
    pq.write_table(table, folder / "transactions.parquet")
    promotions = pd.DataFrame(PROMOTIONS, columns=PROMOTION_FIELDS)
    promotions["week"] = promotions["week"].astype("Int64")  # int64 with a null, as the wheel
    pq.write_table(
        pa.Table.from_pandas(promotions, preserve_index=False), folder / "promotions.parquet"
    )


PROMOTION_FIELDS = ["product_id", "store_id", "display_location", "mailer_location", "week"]
PROMOTIONS = [
    (1, 300, "5", "0", 3),  # week 3: Monday 2017-01-09 .. Sunday 2017-01-15, display only
    (1, 301, "0", "A", 3),  # the same week in another store, mailer only
    (1, 300, "5", "0", 3),  # a repeat of the first row: a duplicate
    (2, 300, "0", "0", 4),  # week 4 (2017-01-16 .. 22), neither
    (4, 300, "1", "A", None),  # no week: quarantined
]


SMALL = [
    "--set=forecast.methods=[seasonal_naive, window_average]",
    "--set=forecast.global.enabled=false",
    "--set=forecast.ensemble=false",
    "--set=forecast.buckets=2",
    "--set=forecast.levels.category.min_units=1",
    "--set=forecast.sources=[completejourney]",
]


@pytest.fixture()
def cj_lake(lake_root: str, tmp_path: Path) -> str:
    folder = tmp_path / "cj"
    write_complete_journey(folder)
    args = ["--source", "completejourney", "--input", str(folder), "--as-of", "2017-12-31"]
    assert run("ingest", job_args(lake_root, *args)) == 0
    return lake_root


# -- the adapter -------------------------------------------------------------------------------


def test_complete_journey_lines_become_purchases_and_voids_are_quarantined(
    cj_lake: str, lake: Lake
) -> None:
    events = lake.read("bronze.events")
    # 112 P1 lines + 16 Saturday P2 lines + 112 fuel lines + 10 FRUIT lines; the void is not
    assert events.count() == 112 + 16 + 112 + 10
    q = lake.read("bronze.quarantine").where("entity = 'events'").collect()
    assert [(r.entity, r.reason) for r in q] == [("events", "bad_quantity")]
    assert '"basket_id":"7777"' in q[0].raw_record
    one = events.where("order_id = '5005'").collect()  # the first Saturday's P2 line
    assert [(r.user_id, r.item_id, r.quantity, r.price, r.channel, str(r.ts))
            for r in one] == [("2", "2", 4, 0.75, "store-300", "2017-01-07 12:00:00")]  # fmt: skip
    items = {r.item_id: r for r in lake.read("bronze.items").collect()}
    assert (items["3"].category, items["3"].department) == ("FUEL", "FUEL")
    assert items["1"].title == "SOUP: CANNED 10 OZ" and items["2"].title == "SOUP: DRY"


def test_complete_journey_promotions_become_weekly_rows_of_bronze_promotions(
    cj_lake: str, lake: Lake
) -> None:
    got = sorted(
        (r.promotion_id, r.item_id, r.channel, str(r.start_date), str(r.end_date), r.display,
         r.mailer, r.source)
        for r in lake.read("bronze.promotions").collect()
    )  # fmt: skip
    assert got == [
        ("1:300:3", "1", "store-300", "2017-01-09", "2017-01-15", "5", None, "completejourney"),
        ("1:301:3", "1", "store-301", "2017-01-09", "2017-01-15", None, "A", "completejourney"),
        ("2:300:4", "2", "store-300", "2017-01-16", "2017-01-22", None, None, "completejourney"),
    ]
    q = lake.read("bronze.quarantine").where("entity = 'promotions'").collect()
    assert [r.reason for r in q] == ["missing_required:end_date; missing_required:start_date"]
    assert '"product_id":"4"' in q[0].raw_record
    runs = lake.read("meta.runs").where("job = 'ingest'").collect()
    metrics = runs[0].metrics
    assert (metrics["promotions.rows_read"], metrics["promotions.repeated"]) == (5.0, 1.0)


def test_promotions_per_series_and_day_count_displays_and_mailers(cj_lake: str, lake: Lake) -> None:
    items = catalog(lake, AS_OF)
    first, last = dt.date(2017, 1, 12), dt.date(2017, 1, 17)  # cuts both weeks

    def daily(level: str) -> list[tuple[str, str, float, float]]:
        rows = promotions_daily(lake, items, level, first, last, ["completejourney"])
        assert rows is not None
        return sorted((r.series_id, str(r.ds), r.display, r.mailer) for r in rows.collect())

    week3 = [f"2017-01-{d}" for d in (12, 13, 14, 15)]
    week4 = ["2017-01-16", "2017-01-17"]
    assert daily("item") == [("1", d, 1.0, 1.0) for d in week3] + [
        ("2", d, 0.0, 0.0) for d in week4
    ]
    assert daily("category") == [("SOUP", d, 1.0, 1.0) for d in week3] + [
        ("SOUP", d, 0.0, 0.0) for d in week4
    ]
    other = promotions_daily(lake, items, "item", first, last, ["other"])
    assert other is not None and other.count() == 0


# -- pieces, by hand ---------------------------------------------------------------------------


def test_dense_fills_missing_days_with_zero() -> None:
    sparse = pd.DataFrame(
        {"series_id": ["a", "a", "b"], "ds": [dt.date(2017, 1, 1), dt.date(2017, 1, 3),
                                             dt.date(2017, 1, 2)], "y": [2.0, 5.0, 7.0]}
    )  # fmt: skip
    out = dense(sparse, dt.date(2017, 1, 1), dt.date(2017, 1, 3), ["a", "b", "c"])
    assert out["y"].tolist() == [2.0, 0.0, 5.0, 0.0, 7.0, 0.0, 0.0, 0.0, 0.0]
    assert out["series_id"].tolist() == ["a"] * 3 + ["b"] * 3 + ["c"] * 3


def test_seasonal_naive_scale_and_conformal_quantiles_by_hand() -> None:
    y = np.array([1, 2, 3, 4, 5, 6, 7, 3, 2, 3, 4, 5, 6, 9], dtype=float)
    assert seasonal_naive_scale(y, 7) == pytest.approx(4 / 7)  # |3-1| + |9-7| over 7 pairs
    assert np.isnan(seasonal_naive_scale(y[:7], 7))
    # n = 10: the ceil(11 * 0.8) = 9th and min(ceil(11 * 0.95), 10) = 10th smallest
    assert conformal(np.arange(1.0, 11.0)) == (9.0, 10.0)


def soup_frame(days: int) -> pd.DataFrame:
    rows = [
        ("soup", START + dt.timedelta(days=i), float(soup_units(START + dt.timedelta(days=i))))
        for i in range(days)
    ]
    return pd.DataFrame(rows, columns=["series_id", "ds", "y"])


def test_a_periodic_series_gets_seasonal_naive_exactly_and_later_data_changes_nothing() -> None:
    spec = LocalSpec(
        start=START, origins=(), horizon=14, methods=("window_average", "seasonal_naive"),
        ensemble=True, min_history_days=84,
    )  # fmt: skip
    origin = AS_OF + dt.timedelta(days=1)
    out = forecast_origin(soup_frame(DAYS), origin, spec)
    chosen = out[out["chosen"]]
    assert set(chosen["method"]) == {"seasonal_naive"}  # validation MAE 0 (ensemble: > 0)
    assert chosen["forecast"].tolist() == [float(u) for u in SOUP * 2]
    assert (chosen["lo_95"] == chosen["forecast"]).all()  # no validation error: no width
    assert chosen["validation_mae"].tolist() == [0.0] * 14
    # a spike after the origin is invisible to every fit, choice and interval
    later = soup_frame(DAYS + 20)
    later.loc[later["ds"] >= origin, "y"] = 1000.0
    pd.testing.assert_frame_equal(forecast_origin(later, origin, spec), out)


def test_closed_days_by_hand() -> None:
    days = [dt.date(2017, 12, 25), dt.date(2018, 12, 25), dt.date(2017, 7, 4), dt.date(2017, 1, 1)]
    got = closed_mask(days, ("12-25", "2017-07-04"))
    assert got.tolist() == [True, True, True, False]
    assert closed_mask(days, ()).tolist() == [False] * 4


def test_a_closing_day_gets_zero_and_counts_as_zero_in_validation() -> None:
    """SOUP (the weekly pattern, exactly) with the shop closed on 2017-04-12 (a Wednesday of
    the last validation window, SOUP sells 1) and every 04-26 (a Wednesday of the horizon).
    The seasonal naive's validation forecast is exact except the closed day, where it says
    0 and SOUP sold 1: validation MAE 1 / 28; the split-conformal half-widths of 27 zeros and
    one 1 are the 24th (0) and 28th (1) smallest; the closed target day is 0 in [0, 0]."""
    spec = LocalSpec(
        start=START, origins=(), horizon=14, methods=("window_average", "seasonal_naive"),
        ensemble=True, min_history_days=84, closed_days=("2017-04-12", "04-26"),
    )  # fmt: skip
    origin = AS_OF + dt.timedelta(days=1)
    out = forecast_origin(soup_frame(DAYS), origin, spec)
    chosen = out[out["chosen"]].set_index("target_date")
    assert set(chosen["method"]) == {"seasonal_naive"}
    assert chosen["validation_mae"].tolist() == pytest.approx([1 / 28] * 14)
    closed = dt.date(2017, 4, 26)
    expected = [0.0 if d == closed else float(soup_units(d)) for d in chosen.index]
    assert chosen["forecast"].tolist() == expected
    assert chosen.loc[closed, ["lo_80", "hi_80", "lo_95", "hi_95"]].tolist() == [0.0] * 4
    assert (chosen["hi_80"] == chosen["forecast"]).all()  # 80 %: half-width 0
    open_days = chosen.index != closed
    assert (chosen["hi_95"][open_days] == chosen["forecast"][open_days] + 1).all()
    assert (out.loc[out["target_date"] == closed, "forecast"] == 0).all()  # every candidate


def test_a_short_series_gets_the_labelled_fallback() -> None:
    sparse = pd.DataFrame(
        {"series_id": "new", "ds": [FRUIT_FIRST + dt.timedelta(days=i) for i in range(10)],
         "y": np.arange(1.0, 11.0)}
    )  # fmt: skip
    spec = LocalSpec(start=START, origins=(), horizon=3, methods=("window_average",))
    out = forecast_origin(sparse, AS_OF + dt.timedelta(days=1), spec)
    assert out["method"].tolist() == [FALLBACK] * 3 and out["chosen"].all()
    # the mean of the 10 days since the first sale; numpy's linear quantiles of 1..10
    assert out["forecast"].tolist() == [5.5] * 3
    assert out[["lo_80", "hi_80", "lo_95", "hi_95"]].iloc[0].tolist() == pytest.approx(
        [1.9, 9.1, 1.225, 9.775]
    )


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown forecast method"):
        LocalSpec(start=START, origins=(), horizon=3, methods=("prophet",))


def test_the_global_guard_cuts_at_zero_and_a_multiple_of_the_largest_past_day() -> None:
    past = np.array([[1.0, 2.0, 4.0], [0.0, 0.0, 0.0]])
    got = guard(np.array([[5.0, -1.0, 100.0], [3.0, 0.0, -2.0]]), past, 3.0)
    assert got.tolist() == [[5.0, 0.0, 12.0], [0.0, 0.0, 0.0]]


def planted_weekly(n: int, days: int, seed: int = 3) -> np.ndarray:
    """``n`` series: each a size times the SOUP weekday pattern, plus Poisson noise."""
    rng = np.random.default_rng(seed)
    sizes = rng.uniform(1, 50, n)
    pattern = np.array([SOUP[(START + dt.timedelta(days=i)).weekday()] for i in range(days)])
    return rng.poisson(sizes[:, None] * pattern[None, :]).astype(float)


def test_the_global_model_learns_a_shared_weekly_pattern_and_ignores_later_days() -> None:
    days = pd.date_range(START, periods=260, freq="D")
    values = planted_weekly(30, 232)
    spec = GlobalSpec(horizon=14, rounds=100, min_train_days=56, threads=1)
    cutoff = 218
    got = fit_predict(values, days, cutoff, spec)
    # the planted truth: each series' size (estimated from its own history) x the pattern;
    # beating the flat 28-day mean by far proves the weekday structure was learnt
    truth = values[:, cutoff : cutoff + 14]
    flat = values[:, cutoff - 28 : cutoff].mean(axis=1, keepdims=True)
    wape = np.abs(got - truth).sum() / truth.sum()
    assert wape < 0.5 * (np.abs(flat - truth).sum() / truth.sum())
    later = values.copy()
    later[:, cutoff:] = 1000.0  # nothing on or after the cutoff may change the forecasts
    np.testing.assert_array_equal(fit_predict(later, days, cutoff, spec), got)


def test_the_global_model_uses_the_promotions_of_the_days_it_forecasts() -> None:
    """Planted: each series sells about its size, three times as much on promotion days
    (random, a quarter of the days, known in advance). With the promotions the forecast
    follows them; without, it cannot; promotions after the forecast window change nothing."""
    rng = np.random.default_rng(5)
    n, total, h, cutoff = 40, 240, 14, 210
    days = pd.date_range(START, periods=total, freq="D")
    sizes = rng.uniform(2, 40, n)
    on = rng.random((n, total)) < 0.25
    values = rng.poisson(sizes[:, None] * np.where(on, 3.0, 1.0)).astype(float)
    exog = np.stack([on.astype(float), np.zeros((n, total))], axis=2)  # display, no mailer
    spec = GlobalSpec(horizon=h, rounds=100, min_train_days=56, threads=1)
    truth = values[:, cutoff : cutoff + h]

    def wape(forecast: np.ndarray) -> float:
        return float(np.abs(forecast - truth).sum() / truth.sum())

    with_promotions = fit_predict(values, days, cutoff, spec, exog)
    without = fit_predict(values, days, cutoff, spec)
    # the planted mean is size x (3 or 1): a forecast that knows the promotion days errs
    # by Poisson noise only; one that does not misses the factor 3 on a quarter of the days
    planted = sizes[:, None] * np.where(on[:, cutoff : cutoff + h], 3.0, 1.0)
    assert wape(with_promotions) < 1.3 * wape(planted)
    assert wape(with_promotions) < 0.6 * wape(without)
    promo_days = on[:, cutoff : cutoff + h]
    ratio = with_promotions[promo_days].mean() / with_promotions[~promo_days].mean()
    assert 2.3 < ratio < 3.7
    later = exog.copy()
    later[:, cutoff + h :] = 50.0  # beyond the forecast window: never read
    np.testing.assert_array_equal(fit_predict(values, days, cutoff, spec, later), with_promotions)


def test_rolling_origins_fit_each_cut_off_once_and_match_statsforecast_cross_validation() -> None:
    """Three origins 14 days apart with two 14-day validation windows need the cut-offs
    o1-28, o1-14, o1, o1+14, o1+28: 5 fits per series, not 9. The shared fits give the same
    rows as fitting each origin on its own, and the validation MAE of every method equals the
    one computed from statsforecast's own ``cross_validation`` on the same days."""
    import os

    os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, SeasonalNaive, WindowAverage

    days = 200
    values = planted_weekly(3, days, seed=11)
    sparse = pd.DataFrame(
        [(f"s{i}", START + dt.timedelta(days=d), values[i, d]) for i in range(3)
         for d in range(days) if values[i, d] > 0],
        columns=["series_id", "ds", "y"],
    )  # fmt: skip
    o1 = START + dt.timedelta(days=150)
    origins = (o1, o1 + dt.timedelta(days=14), o1 + dt.timedelta(days=28))
    spec = LocalSpec(
        start=START, origins=origins, horizon=14, validation_windows=2, ensemble=True,
        methods=("seasonal_naive", "window_average", "auto_ets"),
    )  # fmt: skip
    fits = Fits(sparse, spec)
    shared = [forecast_origin(sparse, o, spec, None, fits) for o in origins]
    assert fits.fitted == 3 * 5
    for o, got in zip(origins, shared, strict=True):
        pd.testing.assert_frame_equal(got, forecast_origin(sparse, o, spec))
    # the reference: statsforecast's cross_validation of the last origin's two windows
    last = origins[-1]
    df = dense(sparse, START, last - dt.timedelta(days=1))
    df = df.rename(columns={"series_id": "unique_id"})
    models = [SeasonalNaive(season_length=7, alias="seasonal_naive"),
              WindowAverage(window_size=28, alias="window_average"),
              AutoETS(season_length=7, alias="auto_ets")]  # fmt: skip
    cv = StatsForecast(models=models, freq="D", n_jobs=1).cross_validation(
        df=df, h=14, n_windows=2, step_size=14
    )
    got = shared[-1]
    for method in spec.methods:
        mae = (cv[method] - cv["y"]).abs().groupby(cv["unique_id"]).mean()
        ours = got[(got["method"] == method) & (got["step"] == 1)].set_index("series_id")
        assert ours["validation_mae"].to_dict() == pytest.approx(mae.to_dict(), rel=1e-9)


def test_the_global_model_fits_each_cut_off_once_across_rolling_origins() -> None:
    days = pd.date_range(START, periods=260, freq="D")
    values = planted_weekly(10, 260)
    spec = GlobalSpec(horizon=14, rounds=20, min_train_days=56, threads=1)
    ids = [f"s{i}" for i in range(10)]
    fitted: dict[int, np.ndarray] = {}
    shared = [global_candidates(ids, values, days, o, 2, spec, None, fitted) for o in (200, 214)]
    assert sorted(fitted) == [172, 186, 200, 214]  # not 6 fits
    alone = global_candidates(ids, values, days, 214, 2, spec)
    for sid in ids:
        np.testing.assert_array_equal(shared[1][sid][0], alone[sid][0])
        np.testing.assert_array_equal(shared[1][sid][1], alone[sid][1])


def test_level_choice_takes_the_candidate_with_the_lowest_pooled_validation_error(
    spark: SparkSession,
) -> None:
    o = dt.date(2017, 5, 1)
    # series a: m1 MAE 1, m2 3 (m1 its own best); b: m1 5, m2 2; pooled m1 6 > m2 5: m2 for
    # both. c has only its fallback and keeps it. Two steps each (the MAE is per series).
    cands = [("a", "m1", 1.0), ("a", "m2", 3.0), ("b", "m1", 5.0), ("b", "m2", 2.0),
             ("c", FALLBACK, None)]  # fmt: skip
    rows = [
        (sid, o, o + dt.timedelta(days=k - 1), k, m, m == "m1", 1.0, 0.0, 2.0, 0.0, 3.0, mae,
         1.0, None)
        for sid, m, mae in cands
        for k in (1, 2)
    ]  # fmt: skip
    frame = spark.createDataFrame(rows, OUTPUT_DDL)
    got = {
        (r.series_id, r.method, r.step) for r in choose_per_level(frame).where("chosen").collect()
    }
    assert got == {("a", "m2", 1), ("a", "m2", 2), ("b", "m2", 1), ("b", "m2", 2),
                   ("c", FALLBACK, 1), ("c", FALLBACK, 2)}  # fmt: skip


# -- the jobs ----------------------------------------------------------------------------------


def test_forecast_job_writes_the_chosen_forecasts_and_reruns_identically(
    cj_lake: str, lake: Lake
) -> None:
    args = job_args(cj_lake, "--as-of", str(AS_OF), "--level", "category", "--horizon", "14",
                    *SMALL)  # fmt: skip
    assert run("forecast", args) == 0
    table = lake.read("gold.demand_forecasts")
    rows = table.orderBy("series_id", "step").collect()
    assert {r.series_id for r in rows} == {"SOUP", "FRUIT"}  # FUEL's department is excluded
    soup = [r for r in rows if r.series_id == "SOUP"]
    assert [r.forecast for r in soup] == [float(u) for u in SOUP * 2]
    assert {r.method for r in soup} == {"seasonal_naive"}
    assert soup[0].target_date == dt.date(2017, 4, 24) and soup[-1].step == 14
    fruit = [r for r in rows if r.series_id == "FRUIT"]
    assert {(r.method, r.forecast) for r in fruit} == {(FALLBACK, 5.5)}
    version = lake.version("gold.demand_forecasts")
    assert run("forecast", args) == 0
    assert lake.version("gold.demand_forecasts") != version
    assert sorted(lake.read("gold.demand_forecasts").collect()) == sorted(rows)


def test_backtest_scores_every_method_and_the_choice_by_hand(cj_lake: str, lake: Lake) -> None:
    args = job_args(
        cj_lake, "--level", "category", *SMALL, "--set=forecast.horizon=14",
        "--set=forecast.backtest.start='2017-01-02'",
        "--set=forecast.backtest.origins=['2017-04-10']",
        "--set=forecast.backtest.selection=['2017-01-02', '2017-04-23']",
        "--set=forecast.backtest.sources=[completejourney]", "--quiet",
    )  # fmt: skip
    assert run("backtest", args) == 0
    got = {
        (r.series_id, r.method): r
        for r in lake.read("gold.forecast_backtests").where("level = 'category'").collect()
    }
    assert set(got) == {("SOUP", "seasonal_naive"), ("SOUP", "window_average"),
                        ("SOUP", "selected"), ("FRUIT", "selected")}  # fmt: skip
    naive = got[("SOUP", "seasonal_naive")]
    assert (naive.demand, naive.abs_error, naive.coverage_95) == (40.0, 0.0, 1.0)
    # the scale: 98 training days, only week two differs from the week before (by 20 units)
    assert naive.scale == pytest.approx(20 / 91)
    avg = got[("SOUP", "window_average")]  # 20/7 a day: |4-20/7| + 3|1-20/7| + ... = 90/7 a week
    assert avg.abs_error == pytest.approx(180 / 7)
    assert avg.wape == pytest.approx(180 / 7 / 40)
    assert avg.mase == pytest.approx(180 / 7 / 14 / (20 / 91))
    assert got[("SOUP", "selected")].chosen_method == "seasonal_naive"
    fruit = got[("FRUIT", "selected")]  # no sale before the origin: the fallback forecasts 0
    assert (fruit.chosen_method, fruit.demand, fruit.abs_error) == (FALLBACK, 55.0, 55.0)
    metrics = {
        (r.algorithm, r.metric): r.value
        for r in lake.read("gold.model_metrics")
        .where((F.col("model") == "forecast_category") & F.col("reference").isNull())
        .collect()
    }
    # FRUIT has only the fallback: compared on SOUP alone
    assert metrics[("selected", "wape")] == 0.0
    assert metrics[("window_average", "wape")] == pytest.approx(180 / 7 / 40)


def test_backtest_with_the_global_model_scores_it_as_one_more_candidate(
    cj_lake: str, lake: Lake
) -> None:
    args = job_args(
        cj_lake, "--level", "category", *SMALL, "--set=forecast.horizon=14",
        "--set=forecast.global.enabled=true", "--set=forecast.global.min_train_days=28",
        "--set=forecast.global.rounds=20",
        "--set=forecast.backtest.start='2017-01-02'",
        "--set=forecast.backtest.origins=['2017-04-10']",
        "--set=forecast.backtest.selection=['2017-01-02', '2017-04-23']", "--quiet",
    )  # fmt: skip
    assert run("backtest", args) == 0
    got = {
        (r.series_id, r.method): r
        for r in lake.read("gold.forecast_backtests").where("level = 'category'").collect()
    }
    assert ("SOUP", "global_gbm") in got and got[("SOUP", "global_gbm")].horizon == 14
    assert got[("SOUP", "global_gbm")].demand == 40.0  # the same actuals as every method
    # the seasonal naive's validation error is 0: no other candidate can be chosen over it
    assert got[("SOUP", "selected")].chosen_method == "seasonal_naive"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--level", "category", "--horizon", "0"], "--horizon 0 is outside 1..91 days"),
        (["--level", "brand"], "unknown --level 'brand': forecast.levels configures"),
        (
            ["--level", "category", "--set", "forecast.closed_days=['12-32']"],
            "forecast.closed_days: '12-32' is not a MM-DD or YYYY-MM-DD day",
        ),
    ],
)
def test_bad_level_or_horizon_stops_with_a_clear_message(
    lake_root: str, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("forecast", job_args(lake_root, "--as-of", str(AS_OF), *extra)) != 0
    assert message in capsys.readouterr().err
