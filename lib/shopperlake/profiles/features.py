"""User profiles: point-in-time per-user features from canonical events (pure transforms).

Only events strictly before the end of the as-of day count. The raw events are aggregated
once, to a (user, session, day, hour, device, channel, order, category, purchase price) grain
(``sql/profile_grain.sql``); every windowed count, including the distinct ones (sessions,
active days, orders), the category shares and median prices are derived from that much
smaller table (about a third of the events), which a job persists. Money is rounded to cents
at each step and ratios to 6 decimals, so re-running a snapshot gives bit-identical values
whatever order Spark adds them in.

Definitions (all days are UTC calendar days, ``as_of`` included in every window):

- purchase occasion (order): distinct ``coalesce(order_id, event_id)`` of purchase events; its
  day is the day of its first purchase event and its value the sum of ``price * quantity``
  (missing quantity: 1) of its lines;
- ``recency_days`` = as_of - last purchase day, ``frequency`` = orders, ``monetary_total`` =
  their value, ``tenure_days`` = as_of - first event day;
- ``btyd_*``: ``lifetimes.utils.summary_data_from_transaction_data`` with ``freq="D"``,
  ``observation_period_end=as_of`` and the spend as monetary value: repeat purchase days,
  days between first and last purchase day, days from first purchase day to as_of, mean spend
  of the repeat purchase days (0 without repeats); null for users without purchases.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from shopperlake.core.dates import end_of_day
from shopperlake.core.errors import ConfigError, SchemaError
from shopperlake.core.schemas import IS_CURRENT, VALID_FROM, VALID_TO
from shopperlake.core.sqlfiles import run_sql

log = logging.getLogger(__name__)

ALL = "all"
# Per-window counts taken straight from the grain (sum over its rows).
GRAIN_COUNTS = (
    "events", "views", "clicks", "searches", "add_to_carts", "remove_from_carts",
    "purchase_events", "returns", "reviews",
)  # fmt: skip
WINDOW_FIELDS = (*GRAIN_COUNTS, "sessions", "active_days", "purchases", "spend")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
EVENT_COLUMNS = (
    "event_id", "user_id", "session_id", "ts", "event_type", "item_id", "category", "price",
    "quantity", "order_id", "rating", "device", "channel", "event_date",
)  # fmt: skip
_TAG_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# p(<expression without commas or parentheses>, <quantile>)
_PERCENTILE = re.compile(r"\bp\(\s*([^,()]+?)\s*,\s*([0-9]*\.?[0-9]+)\s*\)")


@dataclass(frozen=True)
class ProfileParams:
    """Windows (days, each ending with the as-of day), trend period and top-N categories."""

    windows: tuple[int, ...] = (7, 30, 90, 365)
    trend_days: int = 30
    top_categories: int = 3

    def __post_init__(self) -> None:
        if not self.windows or any(
            isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in self.windows
        ):
            raise ConfigError(f"profiles.windows must be positive whole days, got {self.windows}")
        if len(set(self.windows)) != len(self.windows):
            raise ConfigError(f"profiles.windows has duplicates: {self.windows}")
        if self.trend_days < 1:
            raise ConfigError(f"profiles.trend_days must be >= 1, got {self.trend_days}")
        if self.top_categories < 1:
            raise ConfigError(f"profiles.top_categories must be >= 1, got {self.top_categories}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> ProfileParams:
        windows = section.get("windows") or ()
        if not isinstance(windows, list | tuple):
            raise ConfigError(f"profiles.windows must be a list of days, got {windows!r}")
        return cls(
            windows=tuple(sorted(windows)),
            trend_days=int(section.get("trend_days", 30)),
            top_categories=int(section.get("top_categories", 3)),
        )

    @property
    def keys(self) -> tuple[str, ...]:
        """Keys of the ``activity`` map: ``7d``, ``30d``, ..., ``all``."""
        return (*(window_key(w) for w in self.windows), ALL)


def window_key(days: int) -> str:
    return f"{days}d"


def window_start(as_of: dt.date, days: int) -> dt.date:
    """First day of the ``days``-day window that ends with (and includes) the as-of day."""
    return as_of - dt.timedelta(days=days - 1)


def _require(df: DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SchemaError(f"{what} lacks column(s) {', '.join(missing)}")


def point_in_time(events: DataFrame, as_of: dt.date) -> DataFrame:
    """Events strictly before the end of the as-of day (partition filter on event_date too)."""
    return events.where(
        (F.col("event_date") <= F.lit(as_of)) & (F.col("ts") < F.lit(end_of_day(as_of)))
    )


def attributes_as_of(dimension: DataFrame, as_of: dt.date, key: str) -> DataFrame:
    """The version of every ``key`` of a history table (``bronze.users``, ``bronze.items``)
    valid at the end of the as-of day, without the validity columns: one row per key.

    Versions are half-open ``[valid_from, valid_to)`` (null ``valid_from``: since the
    beginning; null ``valid_to``: still valid); the end of the day is the first instant after
    it (00:00 UTC of the next day), where a change ingested with ``--as-of D`` takes effect,
    so the snapshot of D sees what was loaded as of D and nothing loaded later."""
    _require(dimension, (key, VALID_FROM, VALID_TO, IS_CURRENT), f"{key} attributes")
    end = F.lit(end_of_day(as_of))
    started = F.col(VALID_FROM).isNull() | (F.col(VALID_FROM) <= end)
    not_ended = F.col(VALID_TO).isNull() | (F.col(VALID_TO) > end)
    # intervals of one key never overlap; should they, the latest start wins
    latest = Window.partitionBy(key).orderBy(F.col(VALID_FROM).desc_nulls_last())
    return (
        dimension.where(started & not_ended)
        .withColumn("_version", F.row_number().over(latest))
        .where(F.col("_version") == 1)
        .drop("_version", VALID_FROM, VALID_TO, IS_CURRENT)
    )


def with_item_categories(grain: DataFrame, items: DataFrame | None) -> DataFrame:
    """Grain rows without a category take their item's category from the catalog (done on
    the grain, not the raw events: only rows with a ``fill_item`` need the lookup).
    ``items``: the catalog as of the snapshot (:func:`attributes_as_of`)."""
    if items is not None:
        catalog = (
            items.where(F.col("category").isNotNull())
            .select(F.col("item_id").alias("fill_item"), F.col("category").alias("_item_category"))
            .dropDuplicates(["fill_item"])
        )
        grain = grain.join(F.broadcast(catalog), on="fill_item", how="left").withColumn(
            "category", F.coalesce(F.col("category"), F.col("_item_category"))
        )
    return grain.drop("fill_item", "_item_category")


def _sql_args(as_of: dt.date) -> dict[str, Any]:
    return {"as_of": as_of, "as_of_end": end_of_day(as_of)}


def event_grain(events: DataFrame, as_of: dt.date) -> DataFrame:
    """Point-in-time (user, session, day, hour, device, channel, order, category, purchase
    price) counts: ``sql/profile_grain.sql``."""
    return run_sql(events.sparkSession, "profile_grain", _sql_args(as_of), events=events)


def category_activity(grain: DataFrame) -> DataFrame:
    """Per user and category: events, purchased units (priced lines) and amount paid."""
    return (
        grain.where(F.col("category").isNotNull())
        .groupBy("user_id", "category")
        .agg(
            F.sum("events").alias("events"),
            F.sum("units").alias("units"),
            F.round(F.sum("spend"), 2).alias("paid"),
        )
    )


def category_medians(grain: DataFrame) -> DataFrame:
    """Median unit price per category over the snapshot's purchase lines (each grain row
    weighs as many lines as it holds)."""
    lines = grain.where(F.col("purchase_price").isNotNull() & F.col("category").isNotNull())
    return lines.groupBy("category").agg(
        F.percentile("purchase_price", 0.5, F.col("purchase_events")).alias("median_price")
    )


def _in(day: Column, start: dt.date | None) -> Column:
    return F.lit(True) if start is None else day >= F.lit(start)


def _starts(as_of: dt.date, params: ProfileParams) -> dict[str, dt.date | None]:
    starts: dict[str, dt.date | None] = {
        window_key(w): window_start(as_of, w) for w in params.windows
    }
    starts[ALL] = None
    return starts


def _ratio(num: Column, den: Column, digits: int = 6) -> Column:
    """num / den rounded, null when den is 0 or null."""
    return F.when(den > 0, F.round(num / den, digits))


def activity_rollup(grain: DataFrame, as_of: dt.date, params: ProfileParams) -> DataFrame:
    """Per user: event counts by type per window, first/last event, ratings, trend counts and
    events per hour of day and weekday."""
    day = F.col("day")
    aggs: list[Column] = []
    for key, start in _starts(as_of, params).items():
        for name in GRAIN_COUNTS:
            counted = F.when(_in(day, start), F.col(name)).otherwise(0)
            aggs.append(F.sum(counted).alias(f"{key}__{name}"))
    recent = window_start(as_of, params.trend_days)
    prior = window_start(as_of, 2 * params.trend_days)
    # events per hour of day and per weekday (0 = Monday): preferred hour and day
    for h in range(24):
        aggs.append(F.sum(F.when(F.col("hour") == h, F.col("events")).otherwise(0)).alias(f"_h{h}"))
    weekday = F.weekday(day)
    for d in range(7):
        aggs.append(F.sum(F.when(weekday == d, F.col("events")).otherwise(0)).alias(f"_d{d}"))
    aggs += [
        F.min("first_ts").alias("first_event_ts"),
        F.max("last_ts").alias("last_event_ts"),
        F.sum("rating_sum").alias("rating_sum"),
        F.sum("ratings").alias("ratings"),
        F.round(F.coalesce(F.sum("returned_value"), F.lit(0.0)), 2).alias("returned_value"),
        F.sum(F.when(day >= F.lit(recent), F.col("events")).otherwise(0)).alias(
            "trend_recent_events"
        ),
        F.sum(
            F.when((day >= F.lit(prior)) & (day < F.lit(recent)), F.col("events")).otherwise(0)
        ).alias("trend_prior_events"),
    ]
    return grain.groupBy("user_id").agg(*aggs)


def day_rollup(grain: DataFrame, as_of: dt.date, params: ProfileParams) -> DataFrame:
    """Per user: active days per window (distinct days with any event)."""
    days = grain.groupBy("user_id", "day").agg(F.lit(1).alias("_one"))
    aggs = [
        F.count(F.when(_in(F.col("day"), start), 1)).alias(f"{key}__active_days")
        for key, start in _starts(as_of, params).items()
    ]
    return days.groupBy("user_id").agg(*aggs)


def session_rollup(grain: DataFrame, as_of: dt.date, params: ProfileParams) -> DataFrame:
    """Per user: sessions per window (any event in the window) and the session funnel."""
    sessions = (
        grain.where(F.col("session_id").isNotNull())
        .groupBy("user_id", "session_id")
        .agg(
            F.max("day").alias("last_day"),
            (F.sum("views") > 0).alias("has_view"),
            (F.sum("add_to_carts") > 0).alias("has_cart"),
            (F.sum("purchase_events") > 0).alias("has_purchase"),
        )
    )
    aggs = [
        F.count(F.when(_in(F.col("last_day"), start), 1)).alias(f"{key}__sessions")
        for key, start in _starts(as_of, params).items()
    ]
    view, cart, buy = F.col("has_view"), F.col("has_cart"), F.col("has_purchase")
    aggs += [
        F.count(F.when(view, 1)).alias("sessions_with_view"),
        F.count(F.when(cart, 1)).alias("sessions_with_cart"),
        F.count(F.when(buy, 1)).alias("sessions_with_purchase"),
        F.count(F.when(view & cart, 1)).alias("_view_and_cart"),
        F.count(F.when(cart & buy, 1)).alias("_cart_and_purchase"),
    ]
    return (
        sessions.groupBy("user_id")
        .agg(*aggs)
        .withColumns(
            {
                "view_to_cart_rate": _ratio(F.col("_view_and_cart"), F.col("sessions_with_view")),
                "cart_to_purchase_rate": _ratio(
                    F.col("_cart_and_purchase"), F.col("sessions_with_cart")
                ),
                "cart_abandonment_rate": _ratio(
                    F.col("sessions_with_cart") - F.col("_cart_and_purchase"),
                    F.col("sessions_with_cart"),
                ),
            }
        )
        .drop("_view_and_cart", "_cart_and_purchase")
    )


def orders(grain: DataFrame) -> DataFrame:
    """One row per purchase occasion: its day, value, lines and whether anything came back."""
    return (
        grain.where(F.col("order_key").isNotNull())
        .groupBy("user_id", "order_key")
        .agg(
            F.min(F.when(F.col("purchase_events") > 0, F.col("day"))).alias("order_day"),
            F.round(F.coalesce(F.sum("spend"), F.lit(0.0)), 2).alias("order_value"),
            F.sum("purchase_events").alias("lines"),
            F.sum("returns").alias("returned_lines"),
        )
        .where(F.col("lines") > 0)
    )


def order_rollup(order_rows: DataFrame, as_of: dt.date, params: ProfileParams) -> DataFrame:
    """Per user: orders and spend per window (by order day), frequency, returns."""
    day = F.col("order_day")
    aggs: list[Column] = []
    for key, start in _starts(as_of, params).items():
        aggs.append(F.count(F.when(_in(day, start), 1)).alias(f"{key}__purchases"))
        aggs.append(
            F.round(F.sum(F.when(_in(day, start), F.col("order_value")).otherwise(0.0)), 2).alias(
                f"{key}__spend"
            )
        )
    aggs += [
        F.count(F.lit(1)).alias("frequency"),
        F.count(F.when(F.col("returned_lines") > 0, 1)).alias("returned_orders"),
    ]
    return order_rows.groupBy("user_id").agg(*aggs)


def purchase_day_rollup(order_rows: DataFrame, as_of: dt.date) -> DataFrame:
    """Per purchaser: RFM dates, BTYD summary (lifetimes' daily definitions), inter-purchase
    gaps between consecutive purchase days."""
    days = order_rows.groupBy("user_id", "order_day").agg(
        F.round(F.sum("order_value"), 2).alias("day_spend")
    )
    by_user = Window.partitionBy("user_id").orderBy("order_day")
    gaps = days.withColumn("gap", F.datediff(F.col("order_day"), F.lag("order_day").over(by_user)))
    summary = gaps.groupBy("user_id").agg(
        F.count(F.lit(1)).alias("purchase_days"),
        F.min("order_day").alias("first_purchase_date"),
        F.max("order_day").alias("last_purchase_date"),
        F.round(F.sum("day_spend"), 2).alias("monetary_total"),
        F.min_by("day_spend", "order_day").alias("_first_day_spend"),
        F.avg("gap").alias("mean_interpurchase_days"),
        F.round(F.stddev_samp("gap"), 6).alias("std_interpurchase_days"),
    )
    repeat = F.col("purchase_days") - 1
    return summary.select(
        "user_id",
        "purchase_days",
        "first_purchase_date",
        "last_purchase_date",
        "monetary_total",
        "mean_interpurchase_days",
        "std_interpurchase_days",
        F.datediff(F.lit(as_of), F.col("last_purchase_date")).alias("recency_days"),
        repeat.cast("double").alias("btyd_frequency"),
        F.datediff("last_purchase_date", "first_purchase_date")
        .cast("double")
        .alias("btyd_recency"),
        F.datediff(F.lit(as_of), F.col("first_purchase_date")).cast("double").alias("btyd_T"),
        F.when(
            repeat > 0,
            F.round((F.col("monetary_total") - F.col("_first_day_spend")) / repeat, 6),
        )
        .otherwise(0.0)
        .alias("btyd_monetary_value"),
    )


def mix_rollup(grain: DataFrame) -> DataFrame:
    """Per user: the share of events per device and per channel."""
    long = grain.select(
        "user_id",
        "events",
        F.expr("stack(2, 'device', device, 'channel', channel) AS (dim, value)"),
    ).where(F.col("value").isNotNull())
    counts = long.groupBy("user_id", "dim", "value").agg(F.sum("events").alias("n"))
    agg = counts.groupBy("user_id").agg(
        F.expr("collect_list(struct(value, n)) FILTER (WHERE dim = 'device')").alias("_device"),
        F.expr("collect_list(struct(value, n)) FILTER (WHERE dim = 'channel')").alias("_channel"),
    )
    return agg.select(
        "user_id",
        _shares(F.col("_device")).alias("device_mix"),
        _shares(F.col("_channel")).alias("channel_mix"),
    )


def _first_max(prefix: str, n: int) -> Column:
    """0-based index of the largest of the columns ``prefix0..prefix<n-1>`` (ties: first)."""
    counts = "array(" + ", ".join(f"{prefix}{i}" for i in range(n)) + ")"  # our own names
    return F.expr(f"array_position({counts}, array_max({counts})) - 1").cast("int")


def _shares(pairs: Column) -> Column:
    """array<struct<value, n>> -> map value -> n / sum(n) (6 decimals), keys sorted."""
    total = F.aggregate(pairs, F.lit(0).cast("long"), lambda acc, x: acc + x["n"])
    entries = F.transform(
        F.array_sort(pairs),
        lambda x: F.struct(x["value"].alias("key"), F.round(x["n"] / total, 6).alias("share")),
    )
    return F.when(F.size(pairs) > 0, F.map_from_entries(entries))


def category_rollup(cat_activity: DataFrame, medians: DataFrame, top_n: int) -> DataFrame:
    """Per user: top categories by share of activity (ties: name), the full share map, and
    the price level: units bought weighted mean of price paid / category median price."""
    joined = cat_activity.join(F.broadcast(medians), on="category", how="left")
    priced = (
        F.col("median_price").isNotNull() & (F.col("median_price") > 0) & F.col("paid").isNotNull()
    )
    agg = joined.groupBy("user_id").agg(
        F.sum("events").alias("_total"),
        F.array_sort(
            F.collect_list(F.struct((-F.col("events")).alias("neg"), F.col("category"), "events"))
        ).alias("_ranked"),
        F.sum(F.when(priced, F.col("paid") / F.col("median_price"))).alias("_relative"),
        F.sum(F.when(priced, F.col("units"))).alias("_units"),
    )
    total = F.col("_total")
    ranked = F.transform(
        F.col("_ranked"),
        lambda x: F.struct(
            x["category"].alias("category"), F.round(x["events"] / total, 6).alias("share")
        ),
    )
    return agg.select(
        "user_id",
        F.slice(ranked, 1, top_n).alias("top_categories"),
        F.map_from_entries(F.array_sort(ranked)).alias("category_shares"),
        _ratio(F.col("_relative"), F.col("_units")).alias("price_level"),
    )


def _activity_map(params: ProfileParams) -> Column:
    parts: list[Column] = []
    for key in params.keys:
        fields = []
        for name in WINDOW_FIELDS:
            zero = F.lit(0.0) if name == "spend" else F.lit(0).cast("long")
            fields.append(F.coalesce(F.col(f"{key}__{name}"), zero).alias(name))
        parts += [F.lit(key), F.struct(*fields)]
    return F.create_map(*parts)


def profile_grain(events: DataFrame, as_of: dt.date, items: DataFrame | None = None) -> DataFrame:
    """The point-in-time event grain, categories filled from ``items`` (``bronze.items``
    with its history: the versions valid as of the snapshot are used), hash-partitioned by
    user: the one aggregation of raw events every rollup reads (a job persists it), and no
    per-user rollup needs another shuffle."""
    _require(events, EVENT_COLUMNS, "events")
    catalog = None if items is None else attributes_as_of(items, as_of, "item_id")
    return with_item_categories(event_grain(events, as_of), catalog).repartition("user_id")


def build_profiles(
    events: DataFrame,
    as_of: dt.date,
    params: ProfileParams | None = None,
    items: DataFrame | None = None,
    users: DataFrame | None = None,
) -> DataFrame:
    """One row per user with any event before the end of ``as_of``: RFM, BTYD summary, window
    activity, funnel, returns and reviews, affinities, dynamics (no tags: see apply_tags).
    ``items`` / ``users``: ``bronze.items`` / ``bronze.users`` with their history (read as of
    ``as_of``)."""
    return assemble_profiles(profile_grain(events, as_of, items), as_of, params, users)


def assemble_profiles(
    grain: DataFrame,
    as_of: dt.date,
    params: ProfileParams | None = None,
    users: DataFrame | None = None,
) -> DataFrame:
    """The profile columns from the event grain of :func:`profile_grain`; ``users``
    (``bronze.users`` with its history) adds the attributes valid as of the snapshot."""
    params = params or ProfileParams()
    order_rows = orders(grain)
    parts = [
        day_rollup(grain, as_of, params),
        session_rollup(grain, as_of, params),
        order_rollup(order_rows, as_of, params),
        purchase_day_rollup(order_rows, as_of),
        mix_rollup(grain),
        category_rollup(category_activity(grain), category_medians(grain), params.top_categories),
    ]
    if users is not None:
        parts.append(
            attributes_as_of(users, as_of, "user_id").select(
                "user_id", "signup_date", "country", "age_band"
            )
        )
    profile = activity_rollup(grain, as_of, params)
    for part in parts:
        profile = profile.join(part, on="user_id", how="left")
    as_of_lit = F.lit(as_of)
    frequency = F.coalesce(F.col("frequency"), F.lit(0).cast("long"))
    monetary = F.coalesce(F.col("monetary_total"), F.lit(0.0))
    recent, prior = F.col("trend_recent_events"), F.col("trend_prior_events")
    columns: dict[str, Column] = {
        "tenure_days": F.datediff(as_of_lit, F.to_date("first_event_ts")),
        "days_since_last_event": F.datediff(as_of_lit, F.to_date("last_event_ts")),
        "frequency": frequency,
        "monetary_total": monetary,
        "avg_order_value": F.when(frequency > 0, F.round(monetary / frequency, 2)),
        "purchase_days": F.coalesce(F.col("purchase_days"), F.lit(0).cast("long")),
        "activity": _activity_map(params),
        "sessions": F.coalesce(F.col(f"{ALL}__sessions"), F.lit(0).cast("long")),
        "returned_orders": F.coalesce(F.col("returned_orders"), F.lit(0).cast("long")),
        "return_rate": _ratio(F.coalesce(F.col("returned_orders"), F.lit(0)), frequency),
        # line level, whichever order a return is booked on (a cancellation invoice too)
        "returned_lines": F.col(f"{ALL}__returns"),
        "returned_value": F.col("returned_value"),
        "line_return_rate": _ratio(F.col(f"{ALL}__returns"), F.col(f"{ALL}__purchase_events")),
        "review_count": F.col(f"{ALL}__reviews"),
        "avg_rating": _ratio(F.col("rating_sum"), F.col("ratings")),
        "mean_interpurchase_days": F.round("mean_interpurchase_days", 6),
        "activity_trend": _ratio(recent - prior, recent + prior),
        # most events; ties: the earliest hour, the earliest weekday from Monday
        "preferred_hour": _first_max("_h", 24),
        "preferred_day_of_week": F.element_at(
            F.array(*map(F.lit, DAY_NAMES)), _first_max("_d", 7) + 1
        ),
        "as_of_date": as_of_lit,
    }
    for name in ("sessions_with_view", "sessions_with_cart", "sessions_with_purchase"):
        columns[name] = F.coalesce(F.col(name), F.lit(0).cast("long"))
    for name in ("signup_date", "country", "age_band"):
        if name not in profile.columns:
            columns[name] = F.lit(None).cast("date" if name == "signup_date" else "string")
    return profile.withColumns(columns).select(*PROFILE_COLUMNS)


PROFILE_COLUMNS = (
    "user_id", "first_event_ts", "last_event_ts", "tenure_days", "days_since_last_event",
    "first_purchase_date", "last_purchase_date", "recency_days", "frequency", "monetary_total",
    "avg_order_value", "purchase_days", "btyd_frequency", "btyd_recency", "btyd_T",
    "btyd_monetary_value", "activity", "sessions", "sessions_with_view", "sessions_with_cart",
    "sessions_with_purchase", "view_to_cart_rate", "cart_to_purchase_rate",
    "cart_abandonment_rate", "returned_orders", "return_rate", "returned_lines",
    "returned_value", "line_return_rate", "review_count", "avg_rating", "top_categories",
    "category_shares", "price_level", "preferred_day_of_week",
    "preferred_hour", "device_mix", "channel_mix", "mean_interpurchase_days",
    "std_interpurchase_days", "trend_recent_events", "trend_prior_events", "activity_trend",
    "signup_date", "country", "age_band", "as_of_date",
)  # fmt: skip


# -- tags ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TagRule:
    """A named boolean rule over profile columns; may hold ``p(<expr>, <q>)`` placeholders."""

    name: str
    expression: str

    def percentiles(self) -> list[tuple[str, float]]:
        return [(m.group(1), float(m.group(2))) for m in _PERCENTILE.finditer(self.expression)]


def parse_tag_rules(tags: Mapping[str, Any]) -> list[TagRule]:
    """Config ``profiles.tags`` (name -> expression, null drops a tag) -> rules in order."""
    rules = []
    for name, expression in tags.items():
        if expression is None:
            continue
        if not _TAG_NAME.match(str(name)):
            raise ConfigError(f"profiles.tags: invalid tag name '{name}' (use lower_snake_case)")
        if not isinstance(expression, str) or not expression.strip():
            raise ConfigError(f"profiles.tags.{name} must be a Spark SQL expression string")
        rule = TagRule(str(name), expression)
        for _, q in rule.percentiles():
            if not 0.0 <= q <= 1.0:
                raise ConfigError(f"profiles.tags.{name}: percentile {q} is not in [0, 1]")
        rules.append(rule)
    return rules


def tag_thresholds(
    profiles: DataFrame, rules: Sequence[TagRule]
) -> dict[tuple[str, float], float | None]:
    """The population percentiles the rules name, computed over ``profiles`` (one action)."""
    refs = list(dict.fromkeys(ref for rule in rules for ref in rule.percentiles()))
    if not refs:
        return {}
    aggs = []
    for i, (expression, q) in enumerate(refs):
        try:
            aggs.append(F.percentile(F.expr(expression), q).alias(f"p{i}"))
        except Exception as exc:
            raise ConfigError(f"profiles.tags: bad percentile expression '{expression}'") from exc
    try:
        row = profiles.agg(*aggs).first()
    except Exception as exc:
        raise ConfigError(f"profiles.tags: cannot compute percentiles: {exc}") from exc
    assert row is not None
    return {ref: (None if row[i] is None else float(row[i])) for i, ref in enumerate(refs)}


def resolve_rule(rule: TagRule, thresholds: Mapping[tuple[str, float], float | None]) -> str:
    """The rule with every ``p(expr, q)`` replaced by its number (NULL when undefined)."""

    def number(match: re.Match[str]) -> str:
        key = (match.group(1), float(match.group(2)))
        if key not in thresholds:
            raise ConfigError(f"profiles.tags.{rule.name}: no threshold computed for {key}")
        value = thresholds[key]
        return "CAST(NULL AS DOUBLE)" if value is None else f"({float(value)!r})"

    return _PERCENTILE.sub(number, rule.expression)


def apply_tags(
    profiles: DataFrame,
    rules: Sequence[TagRule],
    thresholds: Mapping[tuple[str, float], float | None],
) -> DataFrame:
    """Add ``tags``: the names of the rules a user satisfies, in rule order."""
    flags: list[Column] = []
    for rule in rules:
        text = resolve_rule(rule, thresholds)
        try:
            condition = F.expr(text)
            profiles.select(condition)  # analysis fails here, naming the rule
        except Exception as exc:
            raise ConfigError(f"profiles.tags.{rule.name}: invalid rule '{text}': {exc}") from exc
        flags.append(F.when(condition, F.lit(rule.name)))
    tags = F.array_compact(F.array(*flags)) if flags else F.array().cast("array<string>")
    return profiles.withColumn("tags", tags)
