"""EASE (Steck 2019): ``B = I - P diag(1/diag(P))``, ``P = (XᵀX + λI)⁻¹``, zero diagonal.

The Gram matrix ``XᵀX`` of binary interactions is aggregated on Spark into sparse (i, j, c)
entries, solved on the driver while the catalogue fits (``max_items``), and scored on Spark
one column block of ``B`` at a time (each block broadcast, top-N merged per user).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.broadcast import Broadcast
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

from shopperlake.rec.common import top_n

log = logging.getLogger(__name__)
SCORED = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("item_id", StringType(), False),
        StructField("score", DoubleType(), False),
    ]
)


@dataclass(frozen=True)
class Gram:
    item_ids: list[str]
    matrix: np.ndarray  # (n, n) float64


def gram_matrix(
    spark: SparkSession, interactions: DataFrame, max_items: int, min_users: int = 1
) -> Gram | None:
    """``XᵀX`` for binary X (users × items with at least ``min_users`` users), or None when
    those items exceed ``max_items``. Entries travel to the driver through Arrow."""
    ui = interactions.select("user_id", "item_id").distinct()
    counts = ui.groupBy("item_id").agg(F.count(F.lit(1)).alias("n"))
    kept = counts.where(F.col("n") >= min_users).select("item_id")
    n_items = kept.count()
    if n_items > max_items:
        log.warning(
            "EASE skipped: %d items exceed recommender.ease.max_items=%d "
            "(the blend uses item-CF instead)",
            n_items,
            max_items,
        )
        return None
    item_ids = sorted(r[0] for r in kept.collect())
    index = spark.createDataFrame(list(enumerate(item_ids)), "idx INT, item_id STRING")
    indexed = ui.join(F.broadcast(index), "item_id")
    a = indexed.select("user_id", F.col("idx").alias("i"))
    b = indexed.select("user_id", F.col("idx").alias("j"))
    entries: pd.DataFrame = (
        a.join(b, "user_id").groupBy("i", "j").agg(F.count(F.lit(1)).alias("c")).toPandas()
    )
    matrix = np.zeros((len(item_ids), len(item_ids)), dtype=np.float64)
    if len(entries):
        matrix[entries["i"].to_numpy(), entries["j"].to_numpy()] = entries["c"].to_numpy()
    log.info("EASE Gram: %d items, %d non-zero entries", len(item_ids), len(entries))
    return Gram(item_ids, matrix)


def ease_weights(gram: np.ndarray, lam: float) -> np.ndarray:
    """The closed-form EASE item-item weights with a zero diagonal."""
    g = gram.astype(np.float64, copy=True)
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b = p / (-np.diag(p))
    b[np.diag_indices_from(b)] = 0.0
    return b


def score_ease(
    spark: SparkSession,
    interactions: DataFrame,
    item_ids: list[str],
    weights: np.ndarray,
    n: int,
    block_items: int = 2000,
    rows_per_chunk: int = 512,
) -> DataFrame:
    """(user_id, item_id, score): top-``n`` of ``x_u B`` per user, ``B`` broadcast in blocks."""
    index = spark.createDataFrame(list(enumerate(item_ids)), "idx INT, item_id STRING")
    lists = (
        interactions.select("user_id", "item_id")
        .distinct()
        .join(F.broadcast(index), "item_id")
        .groupBy("user_id")
        .agg(F.collect_list("idx").alias("items"))
    )
    n_items = len(item_ids)
    parts: list[DataFrame] = []
    for lo in range(0, n_items, block_items):
        hi = min(lo + block_items, n_items)
        block = spark.sparkContext.broadcast(weights[:, lo:hi].astype(np.float32))
        ids = spark.sparkContext.broadcast(np.array(item_ids[lo:hi], dtype=object))
        parts.append(
            lists.mapInPandas(_block_scorer(block, ids, n_items, n, rows_per_chunk), SCORED)
        )
    scored = parts[0]
    for part in parts[1:]:
        scored = scored.unionByName(part)
    return top_n(scored, "user_id", n).drop("rank")


def _block_scorer(
    block: Broadcast[np.ndarray], ids: Broadcast[np.ndarray], n_items: int, n: int, rows: int
) -> Callable[[Any], Any]:
    """The mapInPandas function scoring one column block (Arrow batches → top-n rows)."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        b = block.value
        names = ids.value
        top = min(n, b.shape[1])
        for pdf in batches:
            for start in range(0, len(pdf), rows):
                chunk = pdf.iloc[start : start + rows]
                x = np.zeros((len(chunk), n_items), dtype=np.float32)
                for row, items in enumerate(chunk["items"]):
                    x[row, np.asarray(items, dtype=np.int64)] = 1.0
                s = x @ b
                best = np.argpartition(-s, top - 1, axis=1)[:, :top]
                row_idx = np.repeat(np.arange(len(chunk)), top)
                cols = best.ravel()
                yield pd.DataFrame(
                    {
                        "user_id": np.repeat(chunk["user_id"].to_numpy(), top),
                        "item_id": names[cols],
                        "score": s[row_idx, cols].astype(np.float64),
                    }
                )

    return run
