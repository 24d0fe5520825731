"""Content-based: item attributes (category, price band) against the user's profile affinities
(``category_shares`` and ``price_level`` of gold.user_profiles)."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from shopperlake.rec.common import top_n

LOW, HIGH = 0.8, 1.25  # price relative to the category median: below LOW low, above HIGH high


def price_band(relative: Column) -> Column:
    """``low`` / ``mid`` / ``high`` from a price relative to its category median."""
    return (
        F.when(relative.isNull(), F.lit(None).cast("string"))
        .when(relative < LOW, F.lit("low"))
        .when(relative > HIGH, F.lit("high"))
        .otherwise(F.lit("mid"))
    )


def item_features(items: DataFrame, popularity: DataFrame, per_category: int) -> DataFrame:
    """(item_id, category, price_band, pop): the ``per_category`` most popular items of each
    category, ``pop`` their count over the category's largest (0..1]; unseen items count 0."""
    median = items.groupBy("category").agg(F.percentile_approx("price", 0.5).alias("_median"))
    with_pop = (
        items.where(F.col("category").isNotNull())
        .select("item_id", "category", "price")
        .join(popularity.select("item_id", "count"), "item_id", "left")
        .join(median, "category", "left")
        .withColumn("count", F.coalesce(F.col("count"), F.lit(0)).cast("double"))
    )
    ranked = top_n(with_pop, "category", per_category, score="count")
    best = F.max("count").over(Window.partitionBy("category"))
    return ranked.select(
        "item_id",
        "category",
        price_band(F.col("price") / F.col("_median")).alias("price_band"),
        F.when(best > 0, F.col("count") / best).otherwise(F.lit(0.0)).alias("pop"),
    )


def profile_affinities(profiles: DataFrame) -> DataFrame:
    """(user_id, category, share, user_band) from gold.user_profiles."""
    return profiles.select(
        "user_id",
        F.explode("category_shares").alias("category", "share"),
        price_band(F.col("price_level")).alias("user_band"),
    ).where(F.col("share") > 0)


def interaction_affinities(interactions: DataFrame, catalog: DataFrame) -> DataFrame:
    """(user_id, category, share, user_band) from interaction weights (no price band): for
    protocols whose training data is not a profile snapshot (per-user random split)."""
    per_cat = (
        interactions.join(F.broadcast(catalog.select("item_id", "category")), "item_id")
        .groupBy("user_id", "category")
        .agg(F.sum("weight").alias("w"))
    )
    total = F.sum("w").over(Window.partitionBy("user_id"))
    return per_cat.select(
        "user_id",
        "category",
        (F.col("w") / total).alias("share"),
        F.lit(None).cast("string").alias("user_band"),
    )


def recommend_content(
    affinities: DataFrame, features: DataFrame, n: int, price_weight: float
) -> DataFrame:
    """(user_id, item_id, score) with ``score = share(category) * (0.5 + 0.5 pop) *
    (1 + price_weight [band(item) == band(user)])``."""
    users = affinities
    match = F.when(F.col("price_band") == F.col("user_band"), F.lit(price_weight)).otherwise(0.0)
    scored = users.join(F.broadcast(features), "category").select(
        "user_id",
        "item_id",
        (F.col("share") * (0.5 + 0.5 * F.col("pop")) * (1.0 + match)).alias("score"),
    )
    return top_n(scored, "user_id", n).drop("rank")
