"""Implicit feedback: events → (user_id, item_id, weight) with per-type weights and time decay."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shopperlake.profiles.features import point_in_time


def interactions(
    events: DataFrame,
    as_of: dt.date,
    event_weights: Mapping[str, float],
    half_life_days: float,
    lookback_days: int | None = None,
) -> DataFrame:
    """Sum over a user's events on an item of ``weight(type) * 0.5 ** (age / half_life)``.

    ``age`` is whole days from the event's day to ``as_of`` (an event on the as-of day has age
    0). Only events strictly before the end of the as-of day are read. Pairs whose total is not
    positive (e.g. bought then returned) are dropped.
    """
    pit = point_in_time(events, as_of).where(
        F.col("item_id").isNotNull() & F.col("event_type").isin(*event_weights)
    )
    if lookback_days is not None:
        pit = pit.where(F.col("event_date") > F.lit(as_of - dt.timedelta(days=lookback_days)))
    type_weight = F.create_map(
        *[x for k, v in event_weights.items() for x in (F.lit(k), F.lit(float(v)))]
    )[F.col("event_type")]
    age = F.datediff(F.lit(as_of), F.col("event_date")).cast("double")
    decayed = type_weight * F.pow(F.lit(0.5), age / F.lit(float(half_life_days)))
    return (
        pit.groupBy("user_id", "item_id")
        .agg(F.sum(decayed).alias("weight"))
        .where(F.col("weight") > 0)
    )


def bought(events: DataFrame, as_of: dt.date) -> DataFrame:
    """Distinct (user_id, item_id) purchased before the end of the as-of day."""
    return (
        point_in_time(events, as_of)
        .where((F.col("event_type") == "purchase") & F.col("item_id").isNotNull())
        .select("user_id", "item_id")
        .distinct()
    )


def truth_window(
    events: DataFrame, start: dt.date, end: dt.date, event_types: tuple[str, ...]
) -> DataFrame:
    """Relevant (user_id, item_id): events of ``event_types`` on days ``start < day <= end``."""
    return (
        point_in_time(events, end)
        .where(
            (F.col("event_date") > F.lit(start))
            & F.col("event_type").isin(*event_types)
            & F.col("item_id").isNotNull()
        )
        .select("user_id", "item_id")
        .distinct()
    )
