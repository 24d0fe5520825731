"""Hybrid: per-user normalised source scores blended with config weights, then business rules
(already bought, out of catalogue, per-category cap) and a popularity fill so every user gets K.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

FALLBACK_OFFSET = 2.0  # fallback scores sit below every blended score (those are >= 0)


def normalise(recs: DataFrame, method: str = "rrf", rrf_k: float = 10.0) -> DataFrame:
    """(user_id, item_id, norm): ``1 / (rrf_k + rank)`` or per-user min-max of ``score``."""
    w = Window.partitionBy("user_id")
    if method == "rrf":
        rank = F.row_number().over(w.orderBy(F.col("score").desc(), F.col("item_id")))
        norm = 1.0 / (F.lit(float(rrf_k)) + rank)
    elif method == "minmax":
        lo, hi = F.min("score").over(w), F.max("score").over(w)
        norm = F.when(hi > lo, (F.col("score") - lo) / (hi - lo)).otherwise(F.lit(1.0))
    else:
        raise ValueError(f"unknown normalisation {method!r} (rrf | minmax)")
    return recs.select("user_id", "item_id", norm.alias("norm"))


def blend(
    sources: Mapping[str, DataFrame],
    weights: Mapping[str, float],
    method: str = "rrf",
    rrf_k: float = 10.0,
) -> DataFrame:
    """(user_id, item_id, score, source): weighted sum of normalised scores; ``source`` is the
    one contributing most. Sources with weight 0 or absent from ``weights`` are left out."""
    parts = [
        normalise(df, method, rrf_k).select(
            "user_id",
            "item_id",
            (F.col("norm") * F.lit(float(weights[name]))).alias("contrib"),
            F.lit(name).alias("source"),
        )
        for name, df in sources.items()
        if weights.get(name, 0.0) > 0
    ]
    if not parts:
        raise ValueError("blend needs at least one source with a positive weight")
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    return union.groupBy("user_id", "item_id").agg(
        F.sum("contrib").alias("score"), F.max_by("source", "contrib").alias("source")
    )


def finalise(
    candidates: DataFrame,
    users: DataFrame,
    fallback: DataFrame,
    catalog: DataFrame,
    bought: DataFrame | None,
    k: int,
    max_per_category: int,
    repeat_categories: Sequence[str] = (),
) -> DataFrame:
    """Top-``k`` (user_id, rank, item_id, score, source) for every user in ``users``.

    ``candidates`` (user_id, item_id, score, source); ``fallback`` (user_id, item_id, score)
    popularity lists placed below every candidate; ``catalog`` (item_id, category): items not
    in it are dropped; ``bought`` (user_id, item_id) is excluded unless the item's category is
    in ``repeat_categories``; at most ``max_per_category`` items per category.
    """
    fb = fallback.select(
        "user_id",
        "item_id",
        (F.col("score") - F.lit(FALLBACK_OFFSET)).alias("score"),
        F.lit("popularity").alias("source"),
    )
    pool = (
        candidates.select("user_id", "item_id", "score", "source")
        .unionByName(fb)
        .groupBy("user_id", "item_id")
        .agg(F.max("score").alias("score"), F.max_by("source", "score").alias("source"))
        .join(users.select("user_id").distinct(), "user_id")
        .join(F.broadcast(catalog.select("item_id", "category").distinct()), "item_id")
    )
    if bought is not None:
        marked = bought.select("user_id", "item_id").distinct().withColumn("_bought", F.lit(True))
        repeat = F.col("category").isin(*repeat_categories) if repeat_categories else F.lit(False)
        pool = (
            pool.join(marked, ["user_id", "item_id"], "left")
            .where(F.col("_bought").isNull() | repeat)
            .drop("_bought")
        )
    order = [F.col("score").desc(), F.col("item_id").asc()]
    capped = pool.withColumn(
        "_in_cat", F.row_number().over(Window.partitionBy("user_id", "category").orderBy(*order))
    ).where(F.col("_in_cat") <= max_per_category)
    ranked = capped.withColumn(
        "rank", F.row_number().over(Window.partitionBy("user_id").orderBy(*order))
    ).where(F.col("rank") <= k)
    return ranked.select("user_id", F.col("rank").cast("int"), "item_id", "score", "source")
