"""Helpers shared by the candidate sources."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def top_n(df: DataFrame, key: str, n: int, score: str = "score", tie: str = "item_id") -> DataFrame:
    """Rows with the ``n`` highest ``score`` per ``key`` (ties broken by ``tie``), with ``rank``."""
    w = Window.partitionBy(key).orderBy(F.col(score).desc(), F.col(tie).asc())
    return df.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= n)
