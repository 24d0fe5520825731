"""Point-in-time labels, cutoffs and splits on hand-built timelines."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from shopperlake.churn.labels import label_users
from shopperlake.churn.spec import model_spec
from shopperlake.churn.training_set import assign_holdout_split, assign_split, resolve_cutoffs
from shopperlake.churn.training_set import main as build_training_set
from shopperlake.core.config import load_config
from shopperlake.core.errors import InputError
from shopperlake.core.lake import Lake
from shopperlake.core.schemas import EVENTS
from tests.conftest import job_args

D = dt.date
CUTOFF = D(2024, 3, 31)


def events(spark: SparkSession, rows: list[tuple[str, dt.date, str]]) -> DataFrame:
    return spark.createDataFrame(rows, "user_id string, event_date date, event_type string")


def spec(kind: str, lookback: int = 30, horizon: int = 14, population: str = "purchasers"):
    base = model_spec(load_config("local"), kind)
    return dataclasses.replace(
        base, lookback_days=lookback, horizon_days=horizon, population=population
    )


TIMELINE = [
    # a: bought in the lookback, buys again on the last horizon day -> not churned
    ("a", D(2024, 3, 5), "purchase"),
    ("a", D(2024, 4, 14), "purchase"),
    # b: bought on the cutoff day itself (inside lookback), then only views -> churned
    ("b", D(2024, 3, 31), "purchase"),
    ("b", D(2024, 4, 2), "view"),
    # c: last purchase before the lookback, which starts 2024-03-02 (day 1 of 30)
    ("c", D(2024, 2, 29), "purchase"),
    ("c", D(2024, 3, 20), "view"),
    # d: bought on the first lookback day; next purchase one day after the horizon -> churned
    ("d", D(2024, 3, 2), "purchase"),
    ("d", D(2024, 4, 15), "purchase"),
    # e: never bought, browses in the lookback, buys on the first horizon day
    ("e", D(2024, 3, 30), "view"),
    ("e", D(2024, 4, 1), "purchase"),
]


def test_churn_labels_by_hand(spark: SparkSession) -> None:
    # Lookback [03-02, 03-31] (30 days), horizon [04-01, 04-14] (14 days).
    got = label_users(events(spark, TIMELINE), CUTOFF, spec("churn"))
    want = spark.createDataFrame(
        [("a", CUTOFF, 0), ("b", CUTOFF, 1), ("d", CUTOFF, 1)],
        "user_id string, cutoff date, label int",
    )
    assertDataFrameEqual(got, want)


def test_propensity_labels_for_active_population(spark: SparkSession) -> None:
    got = label_users(events(spark, TIMELINE), CUTOFF, spec("propensity", population="active"))
    want = spark.createDataFrame(
        [("a", CUTOFF, 1), ("b", CUTOFF, 0), ("c", CUTOFF, 0), ("d", CUTOFF, 0), ("e", CUTOFF, 1)],
        "user_id string, cutoff date, label int",
    )
    assertDataFrameEqual(got, want)


def test_cutoffs_must_have_complete_horizons() -> None:
    s = spec("churn", horizon=30)
    # 2024-01-01 + 30 days = 2024-01-31: on or before the test cutoff 2024-02-01.
    assert resolve_cutoffs("2024-02-01,2024-01-01", D(2024, 3, 2), s) == [
        D(2024, 1, 1),
        D(2024, 2, 1),
    ]
    with pytest.raises(InputError, match="cutoff 2024-02-15 \\+ horizon 30 days ends after"):
        resolve_cutoffs("2024-01-01,2024-02-15", D(2024, 3, 2), s)
    with pytest.raises(InputError, match="at least two cutoffs"):
        resolve_cutoffs("2024-01-01", D(2024, 3, 2), s)


def test_training_labels_never_reach_the_test_period() -> None:
    s = spec("churn", horizon=30)
    # Test cutoff 2024-02-01: an earlier cutoff may be 2024-01-02 at the latest
    # (2024-01-02 + 30 days = 2024-02-01); 2024-01-03's labels would run to 2024-02-02.
    assert resolve_cutoffs("2024-01-02,2024-02-01", D(2024, 3, 2), s) == [
        D(2024, 1, 2),
        D(2024, 2, 1),
    ]
    with pytest.raises(
        InputError,
        match="cutoff 2024-01-03 \\+ horizon 30 days ends after the test cutoff 2024-02-01.*"
        "on or before 2024-01-02",
    ):
        resolve_cutoffs("2023-12-01,2024-01-03,2024-02-01", D(2024, 3, 2), s)
    # Auto: test cutoff T = 2024-03-02 - 30 days = 2024-02-01; training cutoffs start one
    # horizon earlier, T - 30 = 2024-01-02, then every 10 days back: 2023-12-23.
    auto = dataclasses.replace(s, auto_cutoffs=3, cutoff_step_days=10)
    assert resolve_cutoffs(None, D(2024, 3, 2), auto) == [
        D(2023, 12, 23),
        D(2024, 1, 2),
        D(2024, 2, 1),
    ]
    # The defaults (horizon 60, 4 cutoffs 30 days apart) as of 2024-06-30: T = 2024-05-01,
    # then T - 60 = 2024-03-02, 30 days before it 2024-02-01 (February has 29 days), 2024-01-02.
    assert resolve_cutoffs(None, D(2024, 6, 30), model_spec(load_config("local"), "churn")) == [
        D(2024, 1, 2),
        D(2024, 2, 1),
        D(2024, 3, 2),
        D(2024, 5, 1),
    ]


def test_holdout_design_has_one_cutoff() -> None:
    s = dataclasses.replace(spec("churn", horizon=30), design="holdout")
    assert resolve_cutoffs(None, D(2024, 3, 2), s) == [D(2024, 2, 1)]
    assert resolve_cutoffs("2024-01-15", D(2024, 3, 2), s) == [D(2024, 1, 15)]
    with pytest.raises(InputError, match="design is holdout: give one cutoff"):
        resolve_cutoffs("2024-01-01,2024-02-01", D(2024, 3, 2), s)
    with pytest.raises(InputError, match="cutoff 2024-02-15 \\+ horizon 30 days ends after"):
        resolve_cutoffs("2024-02-15", D(2024, 3, 2), s)


def test_split_is_out_of_time_test_and_stable_user_hash(spark: SparkSession) -> None:
    rows = spark.createDataFrame(
        [(f"u{i}", c) for i in range(400) for c in (D(2024, 1, 1), D(2024, 2, 1))],
        "user_id string, cutoff date",
    )
    split = {
        (r.user_id, r.cutoff): r.split for r in assign_split(rows, D(2024, 2, 1), 0.25).collect()
    }
    assert {s for (u, c), s in split.items() if c == D(2024, 2, 1)} == {"test"}
    early = [s for (u, c), s in split.items() if c == D(2024, 1, 1)]
    assert 0.17 < early.count("validation") / len(early) < 0.33
    again = {
        (r.user_id, r.cutoff): r.split for r in assign_split(rows, D(2024, 2, 1), 0.25).collect()
    }
    assert again == split


def test_holdout_split_shares_are_seeded_per_user(spark: SparkSession) -> None:
    rows = spark.createDataFrame(
        [(f"u{i}", D(2024, 2, 1)) for i in range(3000)], "user_id string, cutoff date"
    )
    split = {r.user_id: r.split for r in assign_holdout_split(rows, 0.2, 0.3, 7).collect()}
    shares = {k: list(split.values()).count(k) / 3000 for k in ("train", "validation", "test")}
    assert shares == pytest.approx({"train": 0.5, "validation": 0.2, "test": 0.3}, abs=0.03)
    again = {r.user_id: r.split for r in assign_holdout_split(rows, 0.2, 0.3, 7).collect()}
    assert again == split
    other = {r.user_id: r.split for r in assign_holdout_split(rows, 0.2, 0.3, 8).collect()}
    assert sum(other[u] != split[u] for u in split) > 1000


def bronze_events(spark: SparkSession, rows: list[tuple[str, dt.date, str]]) -> DataFrame:
    """bronze.events rows (one event per tuple, noon UTC) from (user, day, type)."""
    df = spark.createDataFrame(
        [
            (f"e{i}", u, dt.datetime(d.year, d.month, d.day, 12, tzinfo=dt.UTC), kind)
            for i, (u, d, kind) in enumerate(rows)
        ],
        "event_id string, user_id string, ts timestamp, event_type string",
    )
    purchase = F.col("event_type") == "purchase"
    return df.withColumns(
        {
            "session_id": F.lit(None).cast("string"),
            "item_id": F.lit("i1"),
            "category": F.lit("A"),
            "price": F.lit(10.0),
            "quantity": F.when(purchase, F.lit(1)).cast("int"),
            "order_id": F.when(purchase, F.col("event_id")),
            "query": F.lit(None).cast("string"),
            "rating": F.lit(None).cast("int"),
            "device": F.lit(None).cast("string"),
            "channel": F.lit(None).cast("string"),
            "event_date": F.to_date("ts"),
            "source": F.lit("test"),
            "ingest_run_id": F.lit("r0"),
        }
    ).select(*EVENTS.fieldNames())


def test_build_training_set_holdout_design_by_hand(lake: Lake, lake_root: str) -> None:
    # Calibration period up to c = 2024-04-30 - 30 days = 2024-03-31 (lookback 30 days:
    # [03-02, 03-31]); holdout period [04-01, 04-30].
    lake.append("bronze.events", bronze_events(lake.spark, TIMELINE))
    args = [
        "--model", "churn", "--as-of", "2024-04-30", "--design", "holdout",
        "--set", "models.churn.lookback_days=30", "--set", "models.churn.horizon_days=30",
    ]  # fmt: skip
    assert build_training_set(job_args(lake_root, *args)) == 0
    rows = lake.read("gold.training_sets").where("model = 'churn'")
    # a: buys again 04-14 -> 0; b: only a view after its 03-31 purchase -> 1; d: bought on the
    # first lookback day, next purchase 04-15 (inside this 30-day holdout) -> 0. c, e: no
    # purchase in the lookback.
    want = lake.spark.createDataFrame(
        [("a", CUTOFF, 0), ("b", CUTOFF, 1), ("d", CUTOFF, 0)],
        "user_id string, cutoff date, label int",
    )
    assertDataFrameEqual(rows.select("user_id", "cutoff", "label"), want)
    assert {r.split for r in rows.collect()} <= {"train", "validation", "test"}
