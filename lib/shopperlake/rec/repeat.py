"""Repeat: each user's own past items by decayed interaction weight (the classic next-basket
baseline, "personal popularity"). Under ``exclude_bought`` only the items the user interacted
with but never bought survive the rules (viewed, carted, abandoned)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shopperlake.rec.common import top_n


def recommend_repeat(interactions: DataFrame, n: int) -> DataFrame:
    """(user_id, item_id, score): the user's top-``n`` items by interaction weight."""
    own = interactions.select("user_id", "item_id", F.col("weight").alias("score"))
    return top_n(own, "user_id", n).drop("rank")
