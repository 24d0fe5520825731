"""gold.user_profiles on hand-built timelines (every expected number worked out by hand in the
comments), tags, the lifetimes oracle on CDNOW, leakage and idempotency of the job."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from shopperlake.core.errors import ConfigError
from shopperlake.core.lake import Lake
from shopperlake.core.schemas import EVENTS
from shopperlake.core.sqlfiles import register_views
from shopperlake.ingest.job import main as ingest
from shopperlake.profiles.features import (
    ProfileParams,
    TagRule,
    apply_tags,
    build_profiles,
    parse_tag_rules,
    point_in_time,
    resolve_rule,
    tag_thresholds,
)
from shopperlake.profiles.job import main as build_profiles_job
from shopperlake.views.query import main as query_job
from tests.conftest import job_args

UTC = dt.UTC
AS_OF = dt.date(2024, 3, 31)  # a Sunday
PARAMS = ProfileParams(windows=(7, 30), trend_days=7, top_categories=2)
EVENT_SCHEMA = (
    "event_id string, user_id string, session_id string, ts timestamp, event_type string, "
    "item_id string, category string, price double, quantity int, order_id string, "
    "rating int, device string, channel string"
)


def t(month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2024, month, day, hour, minute, second, tzinfo=UTC)


MW, DA, TE = ("mobile", "web"), ("desktop", "app"), ("tablet", "email")
NO_DEVICE: tuple[str | None, str | None] = (None, None)


def ev(
    event_id: str,
    user: str,
    session: str | None,
    ts: dt.datetime,
    kind: str,
    item: str | None = None,
    cat: str | None = None,
    price: float | None = None,
    qty: int | None = None,
    order: str | None = None,
    rating: int | None = None,
    where: tuple[str | None, str | None] = NO_DEVICE,
) -> tuple[Any, ...]:
    """One event row in EVENT_SCHEMA order; ``where`` is (device, channel)."""
    return (event_id, user, session, ts, kind, item, cat, price, qty, order, rating, *where)


# Windows as of 2024-03-31: 7d = 03-25..03-31, 30d = 03-02..03-31; trend (7 days): recent
# 03-25..03-31, prior 03-18..03-24. Items: i1 (A, 10.0), i2 (B, 30.0), i3 (A, 12.0).
TIMELINE = [
    # u1: three orders on two purchase days, one order partly returned, a review, an
    # abandoned cart, a search in the last second of the as-of day, a view one second later.
    ev("e01", "u1", "s1", t(1, 10, 10), "view", "i1", "A", 10.0, where=MW),
    ev("e02", "u1", "s1", t(1, 10, 10, 5), "add_to_cart", "i1", "A", 10.0, 2, where=MW),
    ev("e03", "u1", "s1", t(1, 10, 10, 10), "purchase", "i1", "A", 10.0, 2, "o1", where=MW),
    ev("e04", "u1", "s1", t(1, 10, 10, 10), "purchase", "i2", "B", 30.0, None, "o1", where=MW),
    ev("e05", "u1", None, t(1, 15, 9), "return", "i2", "B", 30.0, 1, "o1"),
    # the review has no category: bronze.items gives it A (i1)
    ev("e06", "u1", None, t(1, 16, 12), "review", "i1", rating=4),
    ev("e07", "u1", "s2", t(3, 20, 10), "view", "i3", "A", 12.0, where=DA),
    ev("e08", "u1", "s2", t(3, 20, 10, 30), "add_to_cart", "i3", "A", 12.0, 1, where=DA),
    ev("e09", "u1", "s2", t(3, 20, 11), "purchase", "i3", "A", 12.0, 1, "o2", where=DA),
    ev("e10", "u1", "s3", t(3, 20, 18), "purchase", "i1", "A", 10.0, 1, "o3", where=DA),
    ev("e11", "u1", "s4", t(3, 30, 8), "view", "i1", "A", 10.0, where=MW),
    ev("e12", "u1", "s4", t(3, 30, 8, 1), "add_to_cart", "i1", "A", 10.0, 1, where=MW),
    ev("e13", "u1", "s4", t(3, 31, 23, 59, 59), "search", where=MW),
    ev("e14", "u1", "s5", t(4, 1), "view", "i1", "A", 10.0, where=MW),
    # u2: no purchase before the boundary (one exactly at the end of the as-of day).
    ev("e21", "u2", "s6", t(3, 31, 22), "view", "i2", "B", 30.0, where=TE),
    ev("e22", "u2", "s6", t(3, 31, 22, 10), "click", "i2", "B", 30.0, where=TE),
    ev("e23", "u2", "s6", t(3, 31, 22, 20), "add_to_cart", "i2", "B", 30.0, 1, where=TE),
    ev("e24", "u2", "s6", t(3, 31, 22, 25), "remove_from_cart", "i2", "B", 30.0, 1, where=TE),
    ev("e25", "u2", "s7", t(4, 1), "purchase", "i2", "B", 30.0, 1, "o9", where=TE),
    # u3: a single purchase, CDNOW style (no session, device or order id): 4 x 7.5 = 30.0.
    ev("e31", "u3", None, t(2, 15), "purchase", None, "C", 7.5, 4, where=(None, "mail_order")),
    # u4: only events after the as-of date: not in the snapshot.
    ev("e41", "u4", "s8", t(4, 2, 9), "view", "i1", "A", 10.0, where=MW),
]


def events_frame(spark: SparkSession, rows: list[tuple[Any, ...]]) -> DataFrame:
    """bronze.events rows from the short tuples above (event_date = day of ts, UTC)."""
    df = spark.createDataFrame(rows, EVENT_SCHEMA)
    return df.withColumns(
        {
            "query": F.lit(None).cast("string"),
            "event_date": F.to_date("ts"),
            "source": F.lit("test"),
            "ingest_run_id": F.lit("r0"),
        }
    ).select(*EVENTS.fieldNames())


VERSIONS = "valid_from timestamp, valid_to timestamp, is_current boolean"
ALWAYS = (None, None, True)  # the only version, valid since the beginning


@pytest.fixture(scope="module")
def items(spark: SparkSession) -> DataFrame:
    """bronze.items with history: as of 03-31 i1 is in A (it was Z before 02-01 and becomes
    Q on 04-05)."""
    return spark.createDataFrame(
        [
            ("i1", "Z", 10.0, None, t(2, 1), False),
            ("i1", "A", 10.0, t(2, 1), t(4, 5), False),
            ("i1", "Q", 10.0, t(4, 5), None, True),
            ("i2", "B", 30.0, *ALWAYS),
            ("i3", "A", 12.0, *ALWAYS),
        ],
        f"item_id string, category string, price double, {VERSIONS}",
    )


@pytest.fixture(scope="module")
def users(spark: SparkSession) -> DataFrame:
    """bronze.users with history: u1 moved from GB to US on 03-01, u9 has no events."""
    return spark.createDataFrame(
        [
            ("u1", dt.date(2024, 1, 1), "GB", "25-34", None, t(3, 1), False),
            ("u1", dt.date(2024, 1, 1), "US", "25-34", t(3, 1), None, True),
            ("u9", dt.date(2024, 2, 1), "DE", None, *ALWAYS),
        ],
        f"user_id string, signup_date date, country string, age_band string, {VERSIONS}",
    )


@pytest.fixture(scope="module")
def profile(spark: SparkSession, items: DataFrame, users: DataFrame) -> DataFrame:
    events = events_frame(spark, TIMELINE)
    return build_profiles(events, AS_OF, PARAMS, items=items, users=users).cache()


def utc_text(column: str) -> Column:
    """A timestamp as UTC wall-clock text (collected timestamps follow the local zone)."""
    return F.date_format(column, "yyyy-MM-dd HH:mm:ss").alias(column)


def test_rfm_and_btyd(profile: DataFrame) -> None:
    got = profile.select(
        "user_id", utc_text("first_event_ts"), utc_text("last_event_ts"),
        "tenure_days", "days_since_last_event",
        "first_purchase_date", "last_purchase_date", "recency_days", "frequency",
        "monetary_total", "avg_order_value", "purchase_days", "btyd_frequency", "btyd_recency",
        "btyd_T", "btyd_monetary_value", "as_of_date",
    )  # fmt: skip
    d = dt.date
    expected = [
        # u1: first event 01-10 (81 days before 03-31: 21 in Jan + 29 in Feb + 31 in Mar);
        # orders o1 = 2x10 + 30 = 50 on 01-10, o2 = 12 and o3 = 10 on 03-20 (11 days ago):
        # 3 orders, 72.0 in all, 24.0 each; 2 purchase days: 1 repeat day worth 22.0,
        # 70 days from first to last purchase day, 81 days from first purchase day to as-of.
        Row("u1", "2024-01-10 10:00:00", "2024-03-31 23:59:59", 81, 0, d(2024, 1, 10),
            d(2024, 3, 20), 11, 3, 72.0, 24.0, 2, 1.0, 70.0, 81.0, 22.0, AS_OF),
        # u2: everything on the as-of day, the purchase at 04-01 00:00:00 does not count.
        Row("u2", "2024-03-31 22:00:00", "2024-03-31 22:25:00", 0, 0, None, None,
            None, 0, 0.0, None, 0, None, None, None, None, AS_OF),
        # u3: one purchase on 02-15 (45 days: 14 in Feb + 31 in Mar) of 4 x 7.5.
        Row("u3", "2024-02-15 00:00:00", "2024-02-15 00:00:00", 45, 45, d(2024, 2, 15),
            d(2024, 2, 15), 45, 1, 30.0, 30.0, 1, 0.0, 0.0, 45.0, 0.0, AS_OF),
    ]  # fmt: skip
    assertDataFrameEqual(got, expected)


def window(*values: float) -> Row:
    names = (
        "events", "views", "clicks", "searches", "add_to_carts", "remove_from_carts",
        "purchase_events", "returns", "reviews", "sessions", "active_days", "purchases", "spend",
    )  # fmt: skip
    return Row(**dict(zip(names, values, strict=True)))


def test_activity_windows(profile: DataFrame) -> None:
    got = profile.select("user_id", "activity")
    expected = [
        Row("u1", {
            # 03-30 view + cart, 03-31 search: one session (s4), two active days
            "7d": window(3, 1, 0, 1, 1, 0, 0, 0, 0, 1, 2, 0, 0.0),
            # plus 03-20: view, cart, two purchases (o2, o3: 22.0) in s2 and s3
            "30d": window(7, 2, 0, 1, 2, 0, 2, 0, 0, 3, 3, 2, 22.0),
            # everything but e14: sessions s1-s4, days 01-10, 15, 16, 03-20, 30, 31
            "all": window(13, 3, 0, 1, 3, 0, 4, 1, 1, 4, 6, 3, 72.0),
        }),
        Row("u2", {key: window(4, 1, 1, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0.0)
                   for key in ("7d", "30d", "all")}),
        Row("u3", {
            "7d": window(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0),
            "30d": window(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0),
            "all": window(1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 30.0),
        }),
    ]  # fmt: skip
    assertDataFrameEqual(got, expected)


def test_funnel_returns_reviews(profile: DataFrame) -> None:
    got = profile.select(
        "user_id", "sessions", "sessions_with_view", "sessions_with_cart",
        "sessions_with_purchase", "view_to_cart_rate", "cart_to_purchase_rate",
        "cart_abandonment_rate", "returned_orders", "return_rate", "returned_lines",
        "returned_value", "line_return_rate", "review_count", "avg_rating",
    )  # fmt: skip
    expected = [
        # u1 sessions: s1 view+cart+buy, s2 view+cart+buy, s3 buy, s4 view+cart:
        # view->cart 3/3, cart->purchase 2/3, abandoned 1/3; o1 of 3 orders returned;
        # 1 of 4 purchase lines returned (e05: 1 x 30.0).
        Row("u1", 4, 3, 3, 3, 1.0, 0.666667, 0.333333, 1, 0.333333, 1, 30.0, 0.25, 1, 4.0),
        Row("u2", 1, 1, 1, 0, 1.0, 0.0, 1.0, 0, None, 0, 0.0, None, 0, None),
        Row("u3", 0, 0, 0, 0, None, None, None, 0, 0.0, 0, 0.0, 0.0, 0, None),
    ]
    assertDataFrameEqual(got, expected)


def test_affinities_dynamics_and_user_attributes(profile: DataFrame) -> None:
    got = profile.select(
        "user_id", "top_categories", "category_shares", "price_level", "preferred_day_of_week",
        "preferred_hour", "device_mix", "channel_mix", "mean_interpurchase_days",
        "std_interpurchase_days", "trend_recent_events", "trend_prior_events", "activity_trend",
        "signup_date", "country", "age_band",
    )  # fmt: skip
    expected = [
        # u1: 10 of 12 categorised events in A (the review via bronze.items), 2 in B.
        # Medians of the paid unit prices: A [10, 10, 12] -> 10, B [30] -> 30, C [7.5] -> 7.5;
        # price level = (42/10 + 30/30) / 5 units = 1.04. Wednesday: 8 events; 10h: 6 events;
        # mobile/web 7 and desktop/app 4 of 11 events with a device. One gap of 70 days.
        # Trend: 3 events in 03-25..31 vs 4 in 03-18..24 -> (3 - 4) / 7.
        Row("u1", [Row("A", 0.833333), Row("B", 0.166667)], {"A": 0.833333, "B": 0.166667},
            1.04, "Wednesday", 10, {"desktop": 0.363636, "mobile": 0.636364},
            {"app": 0.363636, "web": 0.636364}, 70.0, None, 3, 4, -0.142857,
            dt.date(2024, 1, 1), "US", "25-34"),
        Row("u2", [Row("B", 1.0)], {"B": 1.0}, None, "Sunday", 22, {"tablet": 1.0},
            {"email": 1.0}, None, None, 4, 0, 1.0, None, None, None),
        # u3: 30.0 for 4 units at a median of 7.5 -> 1.0
        Row("u3", [Row("C", 1.0)], {"C": 1.0}, 1.0, "Thursday", 0, None,
            {"mail_order": 1.0}, None, None, 0, 0, None, None, None, None),
    ]  # fmt: skip
    assertDataFrameEqual(got, expected)


def test_interpurchase_std_and_same_day_orders(spark: SparkSession) -> None:
    # purchase days 01-01, 01-03, 01-09: gaps 2 and 6 -> mean 4, sample sd sqrt(8) = 2.828427;
    # two orders on 01-09 (5.0 + 7.25) make one purchase day of 12.25.
    rows = [
        ev("p1", "u5", None, t(1, 1, 12), "purchase", None, "A", 5.0, 1, "a"),
        ev("p2", "u5", None, t(1, 3, 12), "purchase", None, "A", 2.5, 2, "b"),
        ev("p3", "u5", None, t(1, 9, 12), "purchase", None, "A", 5.0, None, "c"),
        ev("p4", "u5", None, t(1, 9, 13), "purchase", None, "A", 7.25, 1, "d"),
    ]
    got = build_profiles(events_frame(spark, rows), dt.date(2024, 1, 10), PARAMS).select(
        "user_id", "frequency", "purchase_days", "monetary_total", "btyd_frequency",
        "btyd_recency", "btyd_T", "btyd_monetary_value", "mean_interpurchase_days",
        "std_interpurchase_days", "recency_days",
    )  # fmt: skip
    # repeat days: 01-03 (5.0) and 01-09 (12.25) -> mean 8.625
    expected = [Row("u5", 4, 3, 22.25, 2.0, 8.0, 9.0, 8.625, 4.0, 2.828427, 1)]
    assertDataFrameEqual(got, expected)


def test_point_in_time_keeps_the_last_second_only(spark: SparkSession) -> None:
    events = events_frame(spark, TIMELINE)
    got = point_in_time(events, AS_OF).where(F.col("ts") >= F.lit(t(3, 31, 23))).select("event_id")
    assertDataFrameEqual(got, [Row("e13")])


def test_analyst_views(spark: SparkSession, profile: DataFrame) -> None:
    older = dt.date(2024, 3, 1)
    tagged = apply_tags(profile, [TagRule("buyer", "frequency > 0")], {})
    snapshots = tagged.where(F.col("user_id") != "u3").unionByName(
        tagged.where(F.col("user_id") == "u3").withColumn("as_of_date", F.lit(older))
    )
    made = register_views(spark, {"user_profiles": snapshots})
    assert {"user_profiles_latest", "user_activity_windows", "user_tags"} <= set(made)
    assert "user_segments_latest" not in made  # needs user_segments
    assertDataFrameEqual(
        spark.table("user_profiles_latest").select("user_id", "as_of_date", "frequency"),
        [Row("u1", AS_OF, 3), Row("u2", AS_OF, 0), Row("u3", older, 1)],
    )
    windows = spark.table("user_activity_windows").where(F.col("user_id") == "u1")
    assertDataFrameEqual(
        windows.select("window_key", "events", "sessions", "active_days", "purchases", "spend"),
        [Row("7d", 3, 1, 2, 0, 0.0), Row("30d", 7, 3, 3, 2, 22.0), Row("all", 13, 4, 6, 3, 72.0)],
    )
    assertDataFrameEqual(
        spark.table("user_tags").select("user_id", "as_of_date", "tag"),
        [Row("u1", AS_OF, "buyer"), Row("u3", older, "buyer")],
    )


# -- tags ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_profiles(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(
        [("a", 10.0, 5, 0.5), ("b", 20.0, 40, 0.9), ("c", 30.0, 3, None), ("d", 40.0, 0, 1.2)],
        "user_id string, monetary_total double, days_since_last_event int, price_level double",
    )


def test_tag_percentiles_are_numbers_of_the_population(small_profiles: DataFrame) -> None:
    rules = parse_tag_rules(
        {
            "high_value": "monetary_total >= p(monetary_total, 0.75)",
            "dormant": "days_since_last_event > 30",
            "bargain_hunter": "price_level <= p(price_level, 0.5)",
            "dropped": None,
        }
    )
    thresholds = tag_thresholds(small_profiles, rules)
    # exact percentiles with linear interpolation: [10, 20, 30, 40] at 0.75 -> 32.5;
    # price levels [0.5, 0.9, 1.2] (null ignored) at 0.5 -> 0.9
    assert thresholds == {("monetary_total", 0.75): 32.5, ("price_level", 0.5): 0.9}
    assert resolve_rule(rules[0], thresholds) == "monetary_total >= (32.5)"
    got = apply_tags(small_profiles, rules, thresholds).select("user_id", "tags")
    expected = [
        Row("a", ["bargain_hunter"]),
        Row("b", ["dormant", "bargain_hunter"]),
        Row("c", []),
        Row("d", ["high_value"]),
    ]
    assertDataFrameEqual(got, expected)


def test_bad_tag_rules_name_the_problem(small_profiles: DataFrame) -> None:
    with pytest.raises(ConfigError, match="invalid tag name 'High'"):
        parse_tag_rules({"High": "monetary_total > 1"})
    with pytest.raises(ConfigError, match=r"percentile 1\.5 is not in \[0, 1\]"):
        parse_tag_rules({"x": "monetary_total > p(monetary_total, 1.5)"})
    with pytest.raises(ConfigError, match="profiles.tags.oops: invalid rule"):
        apply_tags(small_profiles, [TagRule("oops", "no_such_column > 1")], {})


# -- the job: lifetimes oracle, leakage, idempotency ----------------------------------------------


def write_events(lake: Lake, df: DataFrame) -> None:
    lake.append("bronze.events", df)


def run_job(lake_root: str, as_of: str, *extra: str) -> int:
    return build_profiles_job(job_args(lake_root, "--as-of", as_of, *extra))


def test_btyd_columns_equal_lifetimes_on_cdnow(lake: Lake, lake_root: str) -> None:
    from lifetimes.datasets import __file__ as datasets_init
    from lifetimes.utils import summary_data_from_transaction_data

    assert ingest(job_args(lake_root, "--source", "cdnow")) == 0
    end = "1998-06-30"
    assert run_job(lake_root, end) == 0

    raw = pd.read_csv(
        Path(datasets_init).parent / "CDNOW_master.txt",
        sep=r"\s+",
        dtype={"customer_id": str, "date": str},
    )
    raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    oracle = summary_data_from_transaction_data(
        raw, "customer_id", "date", monetary_value_col="dollar_value",
        observation_period_end=end, freq="D",
    )  # fmt: skip
    ours = (
        lake.read("gold.user_profiles")
        .where(F.col("as_of_date") == F.lit(dt.date(1998, 6, 30)))
        .select("user_id", "btyd_frequency", "btyd_recency", "btyd_T", "btyd_monetary_value")
        .toPandas()
        .set_index("user_id")
        .sort_index()
    )
    assert len(oracle) == 23_570
    assert list(ours.index) == list(oracle.index)
    for ours_col, theirs in [
        ("btyd_frequency", "frequency"),
        ("btyd_recency", "recency"),
        ("btyd_T", "T"),
        ("btyd_monetary_value", "monetary_value"),
    ]:
        pd.testing.assert_series_equal(
            ours[ours_col], oracle[theirs], check_names=False, atol=1e-6, rtol=0
        )


def test_leakage_later_events_change_nothing(
    spark: SparkSession, lake: Lake, lake_root: str
) -> None:
    before_end = [r for r in TIMELINE if r[3] < t(4, 1)]
    write_events(lake, events_frame(spark, before_end))
    assert run_job(lake_root, "2024-03-31") == 0
    first = lake.read("gold.user_profiles").collect()

    # the rest of the timeline (at and after the boundary) plus a late return of o2
    later = [r for r in TIMELINE if r[3] >= t(4, 1)]
    later.append(ev("e99", "u1", None, t(4, 3), "return", "i3", "A", 12.0, 1, "o2"))
    write_events(lake, events_frame(spark, later))
    assert run_job(lake_root, "2024-03-31") == 0
    assertDataFrameEqual(lake.read("gold.user_profiles"), first, rtol=0, atol=0)

    # the later snapshot does see them, and the earlier one is still there
    assert run_job(lake_root, "2024-04-03") == 0
    snapshots = lake.read("gold.user_profiles").groupBy("as_of_date").count()
    assertDataFrameEqual(snapshots, [Row(dt.date(2024, 3, 31), 3), Row(dt.date(2024, 4, 3), 4)])


def test_rerun_is_idempotent_and_logged(
    spark: SparkSession, lake: Lake, lake_root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_events(lake, events_frame(spark, TIMELINE))
    assert run_job(lake_root, "2024-03-31") == 0
    first = lake.read("gold.user_profiles").collect()
    version = lake.version("gold.user_profiles")
    assert run_job(lake_root, "2024-03-31") == 0
    assert lake.version("gold.user_profiles") == (version or 0) + 1
    assertDataFrameEqual(lake.read("gold.user_profiles"), first, rtol=0, atol=0)
    run = (
        lake.read("meta.runs")
        .where(F.col("job") == "build_profiles")
        .orderBy(F.col("started_at").desc())
        .first()
    )
    assert run is not None
    # 13 + 4 + 1 events before the end of 03-31 from 3 users
    assert (run.status, run.rows_read, run.rows_written) == ("success", 18, 3)

    # default tags: p(monetary_total, 0.9) of [0, 30, 72] is 30 + 0.8 * 42 = 63.6
    sql = "SELECT user_id, frequency, tags FROM user_profiles_latest ORDER BY user_id"
    assert query_job(job_args(lake_root, "--sql", sql)) == 0
    lines = [ln.replace(" ", "") for ln in capsys.readouterr().out.splitlines()]
    assert lines[3:6] == ["|u1|3|[high_value]|", "|u2|0|[new_user]|", "|u3|1|[dormant]|"]


def test_missing_as_of_is_a_clear_error(lake_root: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert build_profiles_job(job_args(lake_root)) == 2
    assert "needs --as-of YYYY-MM-DD" in capsys.readouterr().err


def test_snapshots_read_attributes_as_of_their_date(
    spark: SparkSession, lake: Lake, lake_root: str, tmp_path: Path
) -> None:
    """u1 moves from DE to FR and item i1 from category A to B, both ingested as of 02-29:
    the snapshot of 01-31, built afterwards, still sees DE and A; the one of 02-29 FR and B."""
    root = tmp_path / "syn"
    for sub in ("events", "items", "users"):
        (root / sub).mkdir(parents=True)
    # one view of i1 without a category: the profile takes it from bronze.items
    event = {"event_id": "a1", "user_id": "u1", "ts": "2024-01-10T09:00:00Z",
             "event_type": "view", "item_id": "i1"}  # fmt: skip
    (root / "events" / "part-0.json").write_text(json.dumps(event))

    def load(country: str, category: str, as_of: str) -> None:
        user = {"user_id": "u1", "signup_date": "2023-12-01", "country": country,
                "age_band": "25-34"}  # fmt: skip
        (root / "users" / "part-0.json").write_text(json.dumps(user))
        (root / "items" / "part-0.json").write_text(
            json.dumps({"item_id": "i1", "category": category, "price": 5.0})
        )
        args = ["--source", "synthetic", "--input", str(root), "--as-of", as_of]
        assert ingest(job_args(lake_root, *args)) == 0

    load("DE", "A", "2024-01-31")
    load("FR", "B", "2024-02-29")
    assert run_job(lake_root, "2024-01-31") == 0
    assert run_job(lake_root, "2024-02-29") == 0
    got = lake.read("gold.user_profiles").select(
        "user_id", "as_of_date", "signup_date", "country", "age_band", "category_shares"
    )
    signup = dt.date(2023, 12, 1)
    assertDataFrameEqual(
        got,
        [
            Row("u1", dt.date(2024, 1, 31), signup, "DE", "25-34", {"A": 1.0}),
            Row("u1", dt.date(2024, 2, 29), signup, "FR", "25-34", {"B": 1.0}),
        ],
    )
