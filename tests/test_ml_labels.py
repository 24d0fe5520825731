"""Point-in-time labels, cutoffs and splits on hand-built timelines."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from shopperlake.config import load_config
from shopperlake.errors import InputError
from shopperlake.ml.labels import label_users
from shopperlake.ml.spec import model_spec
from shopperlake.ml.training_set import assign_split, resolve_cutoffs

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
    assert resolve_cutoffs("2024-02-01,2024-01-01", D(2024, 3, 2), s) == [
        D(2024, 1, 1),
        D(2024, 2, 1),
    ]
    with pytest.raises(InputError, match="cutoff 2024-02-15 \\+ horizon 30 days ends after"):
        resolve_cutoffs("2024-01-01,2024-02-15", D(2024, 3, 2), s)
    with pytest.raises(InputError, match="at least two cutoffs"):
        resolve_cutoffs("2024-01-01", D(2024, 3, 2), s)
    auto = dataclasses.replace(s, auto_cutoffs=3, cutoff_step_days=10)
    # latest = 2024-03-02 - 30 days = 2024-02-01, then every 10 days back
    assert resolve_cutoffs(None, D(2024, 3, 2), auto) == [
        D(2024, 1, 12),
        D(2024, 1, 22),
        D(2024, 2, 1),
    ]


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
