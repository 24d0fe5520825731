"""Spark MLlib implicit-feedback ALS on the decayed interaction weights."""

from __future__ import annotations

from typing import Any

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


def index_ids(spark: SparkSession, df: DataFrame, column: str) -> DataFrame:
    """(column, <column>_idx int) with dense ids 0..n-1 (ALS needs integer ids)."""
    rdd = df.select(column).distinct().rdd.map(lambda r: r[0]).zipWithIndex()
    return spark.createDataFrame(rdd, f"{column} STRING, {column}_idx INT")


def fit_als(
    spark: SparkSession, interactions: DataFrame, params: dict[str, Any]
) -> tuple[ALSModel, DataFrame, DataFrame]:
    """Fit implicit ALS; returns the model and the user / item index frames."""
    users = index_ids(spark, interactions, "user_id").cache()
    items = index_ids(spark, interactions, "item_id").cache()
    data = interactions.join(users, "user_id").join(items, "item_id")
    als = ALS(
        rank=int(params["rank"]),
        regParam=float(params["reg"]),
        alpha=float(params["alpha"]),
        maxIter=int(params["max_iter"]),
        seed=int(params["seed"]),
        implicitPrefs=True,
        userCol="user_id_idx",
        itemCol="item_id_idx",
        ratingCol="weight",
        coldStartStrategy="drop",
        nonnegative=False,
    )
    return als.fit(data), users, items


def recommend_als(model: ALSModel, users: DataFrame, items: DataFrame, n: int) -> DataFrame:
    """(user_id, item_id, score): top-``n`` per known user (recommendForUserSubset)."""
    recs = model.recommendForUserSubset(users.select("user_id_idx"), n)
    flat = recs.select("user_id_idx", F.explode("recommendations").alias("r")).select(
        "user_id_idx",
        F.col("r.item_id_idx").alias("item_id_idx"),
        F.col("r.rating").cast("double").alias("score"),
    )
    return (
        flat.join(users, "user_id_idx")
        .join(F.broadcast(items), "item_id_idx")
        .select("user_id", "item_id", "score")
    )
