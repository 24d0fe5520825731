"""EASE (Steck 2019): ``B = I - P diag(1/diag(P))``, ``P = (XᵀX + λI)⁻¹``, zero diagonal.

The Gram matrix ``XᵀX`` of binary interactions is computed per partition of per-user item sets
(scipy sparse ``XₚᵀXₚ``, upper triangle), summed on Spark into (i, j, c) entries and collected
to the driver while the catalogue fits (``max_items``); ``P`` comes from a Cholesky inverse
(LAPACK ``potrf`` / ``potri``). Scoring stays on Spark: ``B`` is broadcast once in column blocks
of ``block_items``; each ``mapInPandas`` task turns a chunk of users into a sparse binary
``X_u`` and fills ``X_u B`` block by block, then keeps each user's top-N (ties: lower item id)
without a shuffle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pyspark.broadcast import Broadcast
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)
from scipy.linalg import blas, lapack

from shopperlake.rec.common import csr_rows, sorted_ids, top_dense, upper_gram

log = logging.getLogger(__name__)
SCORED = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("item_id", StringType(), False),
        StructField("score", DoubleType(), False),
    ]
)
ENTRIES = StructType(
    [
        StructField("i", IntegerType(), False),
        StructField("j", IntegerType(), False),
        StructField("c", LongType(), False),
    ]
)


@dataclass(frozen=True)
class Gram:
    item_ids: list[str]
    matrix: np.ndarray  # (n, n) float64


def user_item_sets(interactions: DataFrame) -> DataFrame:
    """(user_id, items): each user's distinct item ids (one row per user)."""
    return interactions.groupBy("user_id").agg(F.collect_set("item_id").alias("items"))


def gram_matrix(
    spark: SparkSession, interactions: DataFrame, max_items: int, min_users: int = 1
) -> Gram | None:
    """``XᵀX`` for binary X (users × items with at least ``min_users`` users), or None when
    those items exceed ``max_items``. Entries travel to the driver through Arrow.

    When the catalogue itself fits (the usual case) one pass computes the Gram of every item
    and the items under ``min_users`` (its diagonal) are dropped on the driver: the Gram of
    a column subset of X is the same subset of ``XᵀX``. Otherwise the kept items are counted
    first."""
    every = interactions.select("item_id").distinct().limit(max_items + 1).collect()
    if len(every) <= max_items:
        gram = _gram(spark, interactions, [str(x) for x in sorted_ids(r[0] for r in every)])
        keep = np.flatnonzero(np.diag(gram.matrix) >= min_users)
        if len(keep) == len(gram.item_ids):
            return gram
        return Gram([gram.item_ids[k] for k in keep], gram.matrix[np.ix_(keep, keep)])
    ui = interactions.select("user_id", "item_id").distinct()
    counts = ui.groupBy("item_id").agg(F.count(F.lit(1)).alias("n"))
    kept = counts.where(F.col("n") >= min_users).select("item_id")
    rows = kept.limit(max_items + 1).collect()
    if len(rows) > max_items:
        log.warning(
            "EASE skipped: more than %d items (recommender.ease.max_items) "
            "(the blend uses item-CF instead)",
            max_items,
        )
        return None
    return _gram(spark, interactions, [str(x) for x in sorted_ids(r[0] for r in rows)])


def _gram(spark: SparkSession, interactions: DataFrame, item_ids: list[str]) -> Gram:
    """The Gram of binary X over ``item_ids`` (sorted): per-partition products, summed."""
    n = len(item_ids)
    ids = spark.sparkContext.broadcast(np.array(item_ids, dtype=object))
    try:
        entries: pd.DataFrame = (
            user_item_sets(interactions)
            .mapInPandas(_gram_partial(ids), ENTRIES)
            .groupBy("i", "j")
            .agg(F.sum("c").alias("c"))
            .toPandas()
        )
    finally:
        ids.unpersist()
    matrix = np.zeros((n, n), dtype=np.float64)
    if len(entries):
        i, j, c = (entries[k].to_numpy() for k in ("i", "j", "c"))
        matrix[i, j] = c
        matrix[j, i] = c
    log.info("EASE Gram: %d items, %d non-zero entries (upper triangle)", n, len(entries))
    return Gram(item_ids, matrix)


def _gram_partial(ids: Broadcast[np.ndarray]) -> Callable[[Any], Any]:
    """The mapInPandas function: one partition's ``XₚᵀXₚ`` (upper triangle) as (i, j, c)."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        index = pd.Index(ids.value)
        mats = []
        for pdf in batches:
            indptr, cols, _ = csr_rows(pdf["items"], index)
            data = np.ones(len(cols), dtype=np.int64)
            mats.append(sp.csr_matrix((data, cols, indptr), shape=(len(pdf), len(index))))
        yield from upper_gram(mats)

    return run


def ease_weights(gram: np.ndarray, lam: float) -> np.ndarray:
    """The closed-form EASE item-item weights with a zero diagonal."""
    g = gram.astype(np.float64, copy=True)
    g[np.diag_indices_from(g)] += lam
    p = _spd_inverse(g)
    if p is None:  # not positive definite (λ <= 0 on a singular Gram): general inverse
        g = gram.astype(np.float64, copy=True)
        g[np.diag_indices_from(g)] += lam
        p = np.linalg.inv(g)
    b = p
    b /= -np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return b


def _spd_inverse(g: np.ndarray, step: int = 1024) -> np.ndarray | None:
    """Inverse of a symmetric positive definite C-contiguous ``g``, overwriting it (Cholesky:
    LAPACK ``potrf`` + ``potri``, half the flops of an LU inverse); None if not SPD."""
    if g.shape[0] == 0:
        return g
    # g.T is the same (symmetric) matrix in Fortran order: LAPACK works in place on it.
    c, info = lapack.dpotrf(g.T, lower=0, overwrite_a=1, clean=0)
    if info != 0:
        return None
    p, info = lapack.dpotri(c, lower=0, overwrite_c=1)
    if info != 0:
        return None
    q: np.ndarray = np.ascontiguousarray(p.T)  # the inverse is in q's lower triangle
    n = q.shape[0]
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        q[lo:hi, hi:] = q[hi:, lo:hi].T
        blk = q[lo:hi, lo:hi]
        blk[...] = np.tril(blk) + np.tril(blk, -1).T
    return q


def score_ease(
    spark: SparkSession,
    interactions: DataFrame,
    item_ids: list[str],
    weights: np.ndarray,
    n: int,
    block_items: int = 2000,
    rows_per_chunk: int = 512,
) -> DataFrame:
    """(user_id, item_id, score): top-``n`` of ``x_u B`` per user (ties: the lower item id),
    ``B`` (float32) broadcast once, in blocks of ``block_items`` rows; users without a known
    item get no rows."""
    ids = np.array(item_ids, dtype=object)
    order = np.argsort(ids.astype(str), kind="stable")  # columns in item-id order: tie-break
    if not np.array_equal(order, np.arange(len(ids))):
        weights = weights[:, order]
    sc = spark.sparkContext
    step = max(1, block_items)
    blocks = [
        sc.broadcast(np.ascontiguousarray(weights[lo : lo + step], dtype=np.float32))
        for lo in range(0, len(ids), step)
    ]
    row_ids = sc.broadcast(ids)
    col_ids = sc.broadcast(ids[order])
    scorer = _scorer(blocks, step, row_ids, col_ids, n, rows_per_chunk)
    return user_item_sets(interactions).mapInPandas(scorer, SCORED)


def _scorer(
    blocks: list[Broadcast[np.ndarray]],
    step: int,
    row_ids: Broadcast[np.ndarray],
    col_ids: Broadcast[np.ndarray],
    n: int,
    rows: int,
) -> Callable[[Any], Any]:
    """The mapInPandas function: per chunk of users, ``x_u B`` as the sum of the user's rows of
    ``B`` (binary ``x_u``; BLAS ``saxpy``: several times faster than a scipy sparse × dense
    product here), then each user's top ``n``."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        axpy = blas.saxpy
        index = pd.Index(row_ids.value)
        names = col_ids.value
        bs = [b.value for b in blocks]
        n_items = len(names)
        for pdf in batches:
            for start in range(0, len(pdf), rows):
                chunk = pdf.iloc[start : start + rows]
                indptr, cols, _ = csr_rows(chunk["items"], index)
                s = np.zeros((len(chunk), n_items), dtype=np.float32)
                for r in range(len(chunk)):
                    y = s[r]
                    for c in cols[indptr[r] : indptr[r + 1]].tolist():
                        y = axpy(bs[c // step][c % step], y)
                    s[r] = y  # saxpy works in place; this only matters if it copied
                top_r, top_c, top_v = top_dense(s, n)
                known = np.diff(indptr)[top_r] > 0
                top_r, top_c, top_v = top_r[known], top_c[known], top_v[known]
                yield pd.DataFrame(
                    {
                        "user_id": chunk["user_id"].to_numpy()[top_r],
                        "item_id": names[top_c],
                        "score": top_v.astype(np.float64),
                    }
                )

    return run
