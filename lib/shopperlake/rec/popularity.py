"""Popularity: recent global and per-segment item popularity (the cold-user fallback)."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from shopperlake.profiles.features import point_in_time
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

    A segment's list is its own most popular items, then the items of the overall list it
    lacks (in that order), up to ``n``: a small segment's list is as long as the overall one,
    so it can still fill every list of its users to K. ``user_segments`` is (user_id,
    segment); returns (segment, item_id, score, rank), ``score`` the weight in the list's own
    ranking (segment or overall).
    """
    seg = interactions.join(user_segments, "user_id", "left")
    per_segment = (
        seg.where(F.col("segment").isNotNull())
        .groupBy("segment", "item_id")
        .agg(F.sum("weight").alias("score"))
    )
    overall = top_n(
        seg.groupBy("item_id")
        .agg(F.sum("weight").alias("score"))
        .withColumn("segment", F.lit(GLOBAL)),
        "segment",
        n,
    )
    own = top_n(per_segment, "segment", n).withColumn("_fill", F.lit(0))
    filler = (
        per_segment.select("segment")
        .distinct()
        .crossJoin(F.broadcast(overall.select("item_id", "score", "rank")))
        .withColumn("_fill", F.lit(1))
    )
    first = Window.partitionBy("segment", "item_id").orderBy("_fill", "rank")
    extended = (
        own.unionByName(filler)
        .withColumn("_n", F.row_number().over(first))
        .where(F.col("_n") == 1)
        .withColumn(
            "rank",
            F.row_number().over(Window.partitionBy("segment").orderBy("_fill", "rank")),
        )
        .where(F.col("rank") <= n)
        .select("segment", "item_id", "score", "rank")
    )
    return extended.unionByName(overall.select("segment", "item_id", "score", "rank"))


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
