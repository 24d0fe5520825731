"""Top-K recommendation metrics computed with Spark (joins, windows, aggregations); only the
final numbers reach the driver.

Inputs: ``recs`` (``user_id``, ``item_id``, ``rank``) with ranks 1..K, one row per recommended
item and distinct ranks per user; ``truth`` (``user_id``, ``item_id``) the held-out relevant
items (binary relevance; duplicate rows count once). For a user ``u`` with relevant set
``R_u`` and ``hit(i) = 1`` when the item at rank ``i`` is in ``R_u``:

- ``precision@k = sum_{i<=k} hit(i) / k`` (a list shorter than k still divides by k)
- ``recall@k    = sum_{i<=k} hit(i) / |R_u|``
- ``ndcg@k      = DCG@k / IDCG@k`` with ``DCG@k = sum_{i<=k} hit(i) / log2(i + 1)`` and
  ``IDCG@k = sum_{i=1}^{min(|R_u|, k)} 1 / log2(i + 1)``
- ``map@k``: average precision ``sum_{i<=k} hit(i) * precision@i / min(|R_u|, k)``
- ``hit_rate@k  = 1`` if ``sum_{i<=k} hit(i) > 0`` else ``0``

Each is averaged over the users in ``truth`` (users with at least one relevant item); a truth
user without recommendations scores 0, and recommended users absent from ``truth`` are left
out. Catalogue metrics read only ``recs``:

- ``coverage(k)``: distinct items recommended at rank <= k / ``catalog_size``
- ``novelty(k)``: mean over every recommendation at rank <= k (all users' lists pooled) of
  ``-log2(count(item) / sum of all counts)``, counts from the training ``popularity`` table;
  an item missing from it (or with a non-positive count) has no finite novelty and is an error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from shopperlake.core.errors import SchemaError

METRICS = ("precision", "recall", "ndcg", "map", "hit_rate")


def _require(df: DataFrame, name: str, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SchemaError(f"{name} lacks column(s) {missing}; it has {df.columns}")


def _check_ks(ks: Sequence[int]) -> list[int]:
    if not ks or any(not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"ks must be a non-empty list of positive integers, got {list(ks)}")
    return sorted(set(ks))


def _check_k(k: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def _idcg(n_relevant: Column, k: int) -> Column:
    """Ideal DCG of ``min(n_relevant, k)`` hits, looked up in a literal table of k entries."""
    ideal = [0.0]
    for i in range(1, k + 1):
        ideal.append(ideal[-1] + 1.0 / math.log2(i + 1))
    table = F.array(*[F.lit(v) for v in ideal[1:]])
    return F.element_at(table, F.least(n_relevant, F.lit(k)).cast("int"))


def per_user_ranking_metrics(
    recs: DataFrame, truth: DataFrame, ks: Sequence[int] = (5, 10, 20)
) -> DataFrame:
    """One row per truth user: ``user_id`` and precision/recall/ndcg/map/hit_rate ``@k``.

    The per-user values behind :func:`ranking_metrics` (their mean), kept for bootstrap
    intervals over users. Definitions are in the module docstring.
    """
    _require(recs, "recs", ("user_id", "item_id", "rank"))
    _require(truth, "truth", ("user_id", "item_id"))
    k_list = _check_ks(ks)
    max_k = k_list[-1]

    relevant = truth.select("user_id", "item_id").distinct()
    n_relevant = relevant.groupBy("user_id").agg(F.count(F.lit(1)).alias("n_rel"))

    hits = (
        recs.where(F.col("rank") <= max_k)
        .select("user_id", "item_id", "rank")
        .join(relevant, ["user_id", "item_id"], "inner")
        .withColumn(
            "hit_no",
            F.row_number().over(Window.partitionBy("user_id").orderBy("rank")),
        )
    )
    per_hit_aggs: list[Column] = []
    for k in k_list:
        at_k = F.col("rank") <= k
        per_hit_aggs += [
            F.sum(F.when(at_k, 1).otherwise(0)).alias(f"hits_{k}"),
            F.sum(F.when(at_k, 1.0 / F.log2(F.col("rank") + 1)).otherwise(0.0)).alias(f"dcg_{k}"),
            F.sum(F.when(at_k, F.col("hit_no") / F.col("rank")).otherwise(0.0)).alias(f"ap_{k}"),
        ]
    per_user_hits = hits.groupBy("user_id").agg(*per_hit_aggs)

    users = n_relevant.join(per_user_hits, "user_id", "left")
    n_rel = F.col("n_rel")
    per_user: list[Column] = [F.col("user_id")]
    for k in k_list:
        n_hits = F.coalesce(F.col(f"hits_{k}"), F.lit(0))
        dcg = F.coalesce(F.col(f"dcg_{k}"), F.lit(0.0))
        ap_sum = F.coalesce(F.col(f"ap_{k}"), F.lit(0.0))
        per_user += [
            (n_hits / F.lit(k)).alias(f"precision@{k}"),
            (n_hits / n_rel).alias(f"recall@{k}"),
            (dcg / _idcg(n_rel, k)).alias(f"ndcg@{k}"),
            (ap_sum / F.least(n_rel, F.lit(k))).alias(f"map@{k}"),
            F.when(n_hits > 0, 1.0).otherwise(0.0).alias(f"hit_rate@{k}"),
        ]
    return users.select(*per_user)


def ranking_metrics(
    recs: DataFrame, truth: DataFrame, ks: Sequence[int] = (5, 10, 20)
) -> dict[str, float]:
    """precision/recall/ndcg/map/hit_rate ``@k`` for each k, averaged over truth users.

    Keys are ``"<metric>@<k>"``, e.g. ``"ndcg@10"``. Definitions are in the module docstring.
    """
    k_list = _check_ks(ks)
    names = [f"{m}@{k}" for k in k_list for m in METRICS]
    row = (
        per_user_ranking_metrics(recs, truth, k_list)
        .agg(F.count(F.lit(1)).alias("_users"), *[F.avg(F.col(f"`{n}`")).alias(n) for n in names])
        .first()
    )
    if row is None or row["_users"] == 0:
        raise ValueError("ranking_metrics needs at least one user with relevant items in truth")
    return {n: float(row[n]) for n in names}


def coverage(recs: DataFrame, catalog_size: int, k: int) -> float:
    """Share of the catalogue that appears in somebody's top-k."""
    _require(recs, "recs", ("item_id", "rank"))
    _check_k(k)
    if catalog_size < 1:
        raise ValueError(f"catalog_size must be >= 1, got {catalog_size}")
    row = recs.where(F.col("rank") <= k).agg(F.countDistinct("item_id").alias("n")).first()
    return (row["n"] if row is not None else 0) / catalog_size


def novelty(recs: DataFrame, popularity: DataFrame, k: int) -> float:
    """Mean self-information ``-log2(popularity share)`` of the top-k recommendations."""
    _require(recs, "recs", ("item_id", "rank"))
    _require(popularity, "popularity", ("item_id", "count"))
    _check_k(k)
    counts = popularity.groupBy("item_id").agg(F.sum("count").alias("item_count"))
    total = counts.agg(F.sum("item_count").alias("total"))
    shares = counts.crossJoin(F.broadcast(total)).select(
        "item_id", (F.col("item_count") / F.col("total")).alias("share")
    )
    known = F.col("share").isNotNull() & (F.col("share") > 0)
    row = (
        recs.where(F.col("rank") <= k)
        .select("item_id")
        .join(shares, "item_id", "left")
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.sum(F.when(known, 0).otherwise(1)).alias("unknown"),
            F.avg(F.when(known, -F.log2(F.col("share")))).alias("novelty"),
        )
        .first()
    )
    if row is None or row["n"] == 0:
        raise ValueError(f"novelty needs at least one recommendation at rank <= {k}")
    if row["unknown"]:
        raise ValueError(
            f"novelty: {row['unknown']} top-{k} recommendation(s) are of items missing from "
            "popularity or with a non-positive count"
        )
    return float(row["novelty"])
