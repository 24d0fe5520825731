"""Popularity: recent global and per-segment item popularity (the cold-user fallback)."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shopperlake.profiles import point_in_time
from shopperlake.rec.common import top_n

GLOBAL = "__all__"


def item_popularity(events: DataFrame, as_of: dt.date, days: int) -> DataFrame:
    """(item_id, count): distinct users who interacted with the item in the last ``days``."""
    return (
        point_in_time(events, as_of)
        .where(
            F.col("item_id").isNotNull()
            & (F.col("event_date") > F.lit(as_of - dt.timedelta(days=days)))
        )
        .groupBy("item_id")
        .agg(F.countDistinct("user_id").alias("count"))
    )


def segment_popularity(interactions: DataFrame, user_segments: DataFrame, n: int) -> DataFrame:
    """Top-``n`` items per segment and overall (segment ``__all__``) by interaction weight.

    ``user_segments`` is (user_id, segment); returns (segment, item_id, score, rank).
    """
    seg = interactions.join(user_segments, "user_id", "left")
    per_segment = (
        seg.where(F.col("segment").isNotNull())
        .groupBy("segment", "item_id")
        .agg(F.sum("weight").alias("score"))
    )
    overall = seg.groupBy("item_id").agg(F.sum("weight").alias("score"))
    both = per_segment.unionByName(overall.withColumn("segment", F.lit(GLOBAL)))
    return top_n(both, "segment", n)


def recommend_popular(users: DataFrame, popular: DataFrame) -> DataFrame:
    """Each user (user_id, segment) gets their segment's list, or the global one.

    Scores are ``1 / rank`` so lists of different segments are comparable.
    """
    segs = popular.select("segment").distinct()
    keyed = users.join(F.broadcast(segs.withColumn("_known", F.lit(True))), "segment", "left")
    keyed = keyed.select(
        "user_id",
        F.when(F.col("_known"), F.col("segment")).otherwise(F.lit(GLOBAL)).alias("segment"),
    )
    return keyed.join(F.broadcast(popular), "segment").select(
        "user_id", "item_id", (1.0 / F.col("rank")).alias("score")
    )
