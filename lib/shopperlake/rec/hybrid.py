"""Hybrid: per-user normalised source scores blended with config weights, then business rules
(already bought, out of catalogue, per-category cap) and a popularity fill so every user gets K.

The per-category cap is a preference, never a reason for a short list: items without a category
are each their own group (never capped together), and when the capped candidates and fill cannot
make K items, the best items over the cap complete the list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

FALLBACK_OFFSET = 2.0  # fallback scores sit below every blended score (those are >= 0)


def drop_bought(
    candidates: DataFrame, bought: DataFrame, repeat_categories: Sequence[str] = ()
) -> DataFrame:
    """The serving rule, used by the blend tuner and the server alike: drop candidate
    (user_id, item_id) pairs the user already bought, unless the item's ``category`` (a column
    of ``candidates``) is one of ``repeat_categories`` (bought again as a matter of course)."""
    marked = bought.select("user_id", "item_id").distinct().withColumn("_bought", F.lit(True))
    repeat = F.col("category").isin(*repeat_categories) if repeat_categories else F.lit(False)
    return (
        candidates.join(marked, ["user_id", "item_id"], "left")
        .where(F.col("_bought").isNull() | repeat)
        .drop("_bought")
    )


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


def cap_group() -> list[Column]:
    """The per-category cap's group: the category, or the item itself when it has none."""
    return [F.col("category"), F.when(F.col("category").isNull(), F.col("item_id"))]


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
    in ``repeat_categories``; at most ``max_per_category`` items per category (a null category
    is no category: not capped) while the pool allows, after which the items over the cap
    follow by score, so a user gets fewer than ``k`` items only when the pool itself is smaller.
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
        pool = drop_bought(pool, bought, repeat_categories)
    order = [F.col("score").desc(), F.col("item_id").asc()]
    capped = pool.withColumn(
        "_over_cap",
        F.row_number().over(Window.partitionBy("user_id", *cap_group()).orderBy(*order))
        > F.lit(max_per_category),
    )
    ranked = capped.withColumn(
        "rank",
        F.row_number().over(
            Window.partitionBy("user_id").orderBy(F.col("_over_cap").asc(), *order)
        ),
    ).where(F.col("rank") <= k)
    return ranked.select("user_id", F.col("rank").cast("int"), "item_id", "score", "source")


def short_lists(recs: DataFrame, users: DataFrame, k: int) -> DataFrame:
    """(user_id, items): the users of ``users`` whose list in ``recs`` (user_id, item_id) is not
    exactly ``k`` distinct items, one row each (``items`` 0 for a user without a list)."""
    per_user = recs.groupBy("user_id").agg(
        F.countDistinct("item_id").alias("items"), F.count(F.lit(1)).alias("rows")
    )
    return (
        users.select("user_id")
        .distinct()
        .join(per_user, "user_id", "left")
        .select(
            "user_id",
            F.coalesce(F.col("items"), F.lit(0)).alias("items"),
            F.coalesce(F.col("rows"), F.lit(0)).alias("rows"),
        )
        .where((F.col("items") != k) | (F.col("rows") != k))
        .select("user_id", "items")
    )
