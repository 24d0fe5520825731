"""Item-based CF: item-item co-occurrence similarity (cosine or Jaccard, minimum support) from
a self-join of capped per-user item lists, never a dense matrix; top-N neighbours per item."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shopperlake.rec.common import top_n


def cap_items(interactions: DataFrame, max_items_per_user: int) -> DataFrame:
    """A user's ``max_items_per_user`` heaviest items (bounds the self-join per user)."""
    capped = top_n(interactions, "user_id", max_items_per_user, score="weight")
    return capped.drop("rank")


def item_similarity(
    interactions: DataFrame,
    similarity: str = "cosine",
    min_support: int = 2,
    neighbours: int = 50,
    max_items_per_user: int = 200,
) -> DataFrame:
    """(item_id, similar_item_id, score, rank) on binary co-occurrence.

    ``c_ij`` users with both items, ``n_i`` users with item i: cosine ``c_ij / sqrt(n_i n_j)``,
    Jaccard ``c_ij / (n_i + n_j - c_ij)``; pairs with ``c_ij < min_support`` are dropped.
    """
    ui = cap_items(interactions, max_items_per_user).select("user_id", "item_id")
    counts = ui.groupBy("item_id").agg(F.count(F.lit(1)).alias("n"))
    a, b = ui.alias("a"), ui.alias("b")
    pairs = (
        a.join(
            b,
            (F.col("a.user_id") == F.col("b.user_id")) & (F.col("a.item_id") != F.col("b.item_id")),
        )
        .groupBy(F.col("a.item_id").alias("item_id"), F.col("b.item_id").alias("similar_item_id"))
        .agg(F.count(F.lit(1)).alias("c"))
        .where(F.col("c") >= min_support)
    )
    ni = counts.select("item_id", F.col("n").alias("n_i"))
    nj = counts.select(F.col("item_id").alias("similar_item_id"), F.col("n").alias("n_j"))
    joined = pairs.join(ni, "item_id").join(nj, "similar_item_id")
    if similarity == "cosine":
        score = F.col("c") / F.sqrt(F.col("n_i") * F.col("n_j"))
    elif similarity == "jaccard":
        score = F.col("c") / (F.col("n_i") + F.col("n_j") - F.col("c"))
    else:
        raise ValueError(f"unknown similarity {similarity!r} (cosine | jaccard)")
    scored = joined.select("item_id", "similar_item_id", score.alias("score"))
    return top_n(scored, "item_id", neighbours, tie="similar_item_id")


def recommend_itemcf(interactions: DataFrame, similar: DataFrame, n: int) -> DataFrame:
    """User score of item j: ``sum_i weight(u, i) * sim(i, j)`` over the user's items i."""
    scored = (
        interactions.join(similar.select("item_id", "similar_item_id", "score"), "item_id")
        .groupBy("user_id", F.col("similar_item_id").alias("item_id"))
        .agg(F.sum(F.col("weight") * F.col("score")).alias("score"))
    )
    return top_n(scored, "user_id", n).drop("rank")
