"""Item-based CF: item-item co-occurrence similarity (cosine or Jaccard, minimum support) from
per-partition sparse products ``XₚᵀXₚ`` of capped per-user item sets (scipy, upper triangle),
summed on Spark, never a dense matrix; top-N neighbours per item (Spark window).

User scoring (``sum_i w(u,i) sim(i,j)``) runs inside ``mapInPandas``: the neighbour table (items
× N, sparse) is broadcast once and each chunk of users is one sparse product ``X_w S``, top-n
per user kept in the task (no shuffle of the user × candidate pairs). When the neighbour table
exceeds ``MAX_BROADCAST_PAIRS`` rows the same scores come from a Spark join instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pyspark.broadcast import Broadcast
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from shopperlake.rec.common import csr_rows, sorted_ids, top_n, top_sparse, upper_gram

MAX_BROADCAST_PAIRS = 20_000_000  # neighbour rows scored in-task (~240 MB of CSR arrays)
_ROWS_PER_CHUNK = 1024  # users per sparse product in the scorer
ENTRIES = StructType(
    [
        StructField("i", IntegerType(), False),
        StructField("j", IntegerType(), False),
        StructField("c", LongType(), False),
    ]
)
SCORED = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("item_id", StringType(), False),
        StructField("score", DoubleType(), False),
    ]
)


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

    ``c_ij`` users with both items, ``n_i`` users with item i (both over each user's
    ``max_items_per_user`` heaviest items, ties: the lower item id): cosine
    ``c_ij / sqrt(n_i n_j)``, Jaccard ``c_ij / (n_i + n_j - c_ij)``; pairs with
    ``c_ij < min_support`` are dropped. Expects one row per (user, item).
    """
    if similarity not in ("cosine", "jaccard"):
        raise ValueError(f"unknown similarity {similarity!r} (cosine | jaccard)")
    spark = interactions.sparkSession
    ids = sorted_ids([r[0] for r in interactions.select("item_id").distinct().collect()])
    ids_bc = spark.sparkContext.broadcast(ids)
    lists = interactions.groupBy("user_id").agg(
        F.collect_list("item_id").alias("items"), F.collect_list("weight").alias("weights")
    )
    # Computed once here (eagerly): the four uses below would each re-run the partition
    # products otherwise (pushed-down filters make their plans differ, so no exchange reuse).
    gram = (
        lists.mapInPandas(_cooccurrence(ids_bc, max_items_per_user), ENTRIES)
        .groupBy("i", "j")
        .agg(F.sum("c").alias("c"))
        .localCheckpoint(eager=True)
    )
    ids_bc.unpersist()
    counts = gram.where(F.col("i") == F.col("j")).select("i", F.col("c").alias("n"))
    pairs = gram.where((F.col("i") < F.col("j")) & (F.col("c") >= min_support))
    both = pairs.unionByName(pairs.select(F.col("j").alias("i"), F.col("i").alias("j"), "c"))
    ni = counts.select("i", F.col("n").alias("n_i"))
    nj = counts.select(F.col("i").alias("j"), F.col("n").alias("n_j"))
    joined = both.join(F.broadcast(ni), "i").join(F.broadcast(nj), "j")
    if similarity == "cosine":
        score = F.col("c") / F.sqrt(F.col("n_i") * F.col("n_j"))
    else:
        score = F.col("c") / (F.col("n_i") + F.col("n_j") - F.col("c"))
    top = top_n(joined.select("i", "j", score.alias("score")), "i", neighbours, tie="j")
    names = spark.createDataFrame(
        pd.DataFrame({"i": np.arange(len(ids), dtype=np.int32), "item_id": ids.astype(str)})
    )
    similar = names.select(F.col("i").alias("j"), F.col("item_id").alias("similar_item_id"))
    return (
        top.join(F.broadcast(names), "i")
        .join(F.broadcast(similar), "j")
        .select("item_id", "similar_item_id", "score", "rank")
    )


def _cooccurrence(ids: Broadcast[np.ndarray], cap: int) -> Callable[[Any], Any]:
    """The mapInPandas function: one partition's binary ``XₚᵀXₚ`` (upper triangle with the
    diagonal ``n_i``) over each user's ``cap`` heaviest items, as (i, j, c)."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        index = pd.Index(ids.value)
        mats = []
        for pdf in batches:
            indptr, cols, data = csr_rows(pdf["items"], index, pdf["weights"])
            indptr, cols = _cap_rows(indptr, cols, data, cap)
            x = sp.csr_matrix(
                (np.ones(len(cols), dtype=np.int64), cols, indptr), shape=(len(pdf), len(index))
            )
            x.sum_duplicates()
            x.data[:] = 1
            mats.append(x)
        yield from upper_gram(mats)

    return run


def _cap_rows(
    indptr: np.ndarray, cols: np.ndarray, data: np.ndarray, cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``cap`` heaviest entries (ties: the lower column = the lower item id)."""
    lengths = np.diff(indptr)
    long = np.flatnonzero(lengths > cap)
    if len(long) == 0:
        return indptr, cols
    keep = np.ones(len(cols), dtype=bool)
    for r in long:
        lo, hi = indptr[r], indptr[r + 1]
        order = np.lexsort((cols[lo:hi], -data[lo:hi]))
        keep[lo + order[cap:]] = False
    lengths = np.minimum(lengths, cap)
    new_ptr = np.zeros_like(indptr)
    np.cumsum(lengths, out=new_ptr[1:])
    return new_ptr, cols[keep]


def recommend_itemcf(interactions: DataFrame, similar: DataFrame, n: int) -> DataFrame:
    """User score of item j: ``sum_i weight(u, i) * sim(i, j)`` over the user's items i; the
    ``n`` best per user (ties: the lower item id)."""
    sims: pd.DataFrame = (
        similar.select("item_id", "similar_item_id", "score")
        .limit(MAX_BROADCAST_PAIRS + 1)
        .toPandas()
    )
    if len(sims) > MAX_BROADCAST_PAIRS:
        return _recommend_itemcf_join(interactions, similar, n)
    ids = sorted_ids(np.concatenate([sims["item_id"].to_numpy(), sims["similar_item_id"]]))
    index = pd.Index(ids)
    matrix = sp.csr_matrix(
        (
            sims["score"].to_numpy(dtype=np.float64),
            (index.get_indexer(sims["item_id"]), index.get_indexer(sims["similar_item_id"])),
        ),
        shape=(len(ids), len(ids)),
    )
    sc = interactions.sparkSession.sparkContext
    shared = sc.broadcast((ids, matrix.indptr, matrix.indices, matrix.data))
    lists = interactions.groupBy("user_id").agg(
        F.collect_list("item_id").alias("items"), F.collect_list("weight").alias("weights")
    )
    return lists.mapInPandas(_scorer(shared, n), SCORED)


def _scorer(
    shared: Broadcast[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], n: int
) -> Callable[[Any], Any]:
    """The mapInPandas function: per chunk of users, ``X_w S`` (both sparse), top ``n``."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        names, s_ptr, s_idx, s_val = shared.value
        index = pd.Index(names)
        sim = sp.csr_matrix((s_val, s_idx, s_ptr), shape=(len(names), len(names)))
        for pdf in batches:
            for start in range(0, len(pdf), _ROWS_PER_CHUNK):
                chunk = pdf.iloc[start : start + _ROWS_PER_CHUNK]
                indptr, cols, data = csr_rows(chunk["items"], index, chunk["weights"])
                x = sp.csr_matrix((data, cols, indptr), shape=(len(chunk), len(names)))
                scores = (x @ sim).tocsr()
                r, c, v = top_sparse(scores.indptr, scores.indices, scores.data, n)
                yield pd.DataFrame(
                    {
                        "user_id": chunk["user_id"].to_numpy()[r],
                        "item_id": names[c],
                        "score": v.astype(np.float64),
                    }
                )

    return run


def _recommend_itemcf_join(interactions: DataFrame, similar: DataFrame, n: int) -> DataFrame:
    """:func:`recommend_itemcf` as a Spark join (neighbour tables too big to broadcast)."""
    scored = (
        interactions.join(similar.select("item_id", "similar_item_id", "score"), "item_id")
        .groupBy("user_id", F.col("similar_item_id").alias("item_id"))
        .agg(F.sum(F.col("weight") * F.col("score")).alias("score"))
    )
    return top_n(scored, "user_id", n).drop("rank")
