"""``gold.user_sequences``: each user's last N item events before the end of the as-of day,
as arrays (oldest first) that Petastorm reads as plain array columns.

Order within a user: event time, then the funnel order of the event type (view, click,
add_to_cart, remove_from_cart, purchase, return, review: a purchase logged in the same second
as its view comes after it), then ``event_id``, so equal times always sort the same way.
``gap_seconds`` is the time since the user's previous item event, also when that event lies
before the kept window (0 for the user's first event); ``positions`` run 1..length.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from shopperlake.profiles.features import point_in_time

FUNNEL = ("view", "click", "add_to_cart", "remove_from_cart", "purchase", "return", "review")


def funnel_rank(column: str = "event_type") -> F.Column:
    rank = F.lit(len(FUNNEL))
    for i, name in reversed(list(enumerate(FUNNEL))):
        rank = F.when(F.col(column) == name, F.lit(i)).otherwise(rank)
    return rank


def user_sequences(
    events: DataFrame, as_of: dt.date, max_len: int, event_types: Sequence[str], min_events: int
) -> DataFrame:
    """One row per user with at least ``min_events`` item events up to ``as_of``."""
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    item_events = point_in_time(events, as_of).where(
        F.col("event_type").isin(*event_types) & F.col("item_id").isNotNull()
    )
    ordered = item_events.select(
        "user_id", "event_id", "ts", "event_type", "item_id", "category",
        funnel_rank().alias("funnel"),
    )  # fmt: skip
    forward = Window.partitionBy("user_id").orderBy("ts", "funnel", "event_id")
    backward = Window.partitionBy("user_id").orderBy(
        F.desc("ts"), F.desc("funnel"), F.desc("event_id")
    )
    gap = F.coalesce(
        F.col("ts").cast("long") - F.lag(F.col("ts").cast("long")).over(forward), F.lit(0)
    )
    ranked = ordered.select(
        "*",
        gap.alias("gap_seconds"),
        F.row_number().over(backward).alias("from_end"),
        F.count(F.lit(1)).over(Window.partitionBy("user_id")).alias("events_total"),
    ).where((F.col("from_end") <= max_len) & (F.col("events_total") >= min_events))
    # sort_array of structs orders by their fields in turn: oldest first, the same tie rule
    steps = F.sort_array(
        F.collect_list(
            F.struct(
                "ts", "funnel", "event_id", "item_id", "event_type", "category", "gap_seconds"
            )  # fmt: skip
        )
    )
    grouped = ranked.groupBy("user_id").agg(
        steps.alias("steps"), F.first("events_total").alias("events_total")
    )
    length = F.size("steps")
    return grouped.select(
        "user_id",
        F.lit(as_of).alias("as_of_date"),
        length.alias("length"),
        F.col("steps.item_id").alias("item_ids"),
        F.col("steps.event_type").alias("event_types"),
        F.col("steps.category").alias("categories"),
        F.col("steps.gap_seconds").alias("gap_seconds"),
        F.sequence(F.lit(1), length).alias("positions"),
        F.element_at("steps.ts", -1).alias("last_ts"),
        F.col("events_total").cast("long").alias("events_total"),
    )
