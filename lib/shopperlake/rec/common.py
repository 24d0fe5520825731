"""Helpers shared by the candidate sources."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def top_n(df: DataFrame, key: str, n: int, score: str = "score", tie: str = "item_id") -> DataFrame:
    """Rows with the ``n`` highest ``score`` per ``key`` (ties broken by ``tie``), with ``rank``."""
    w = Window.partitionBy(key).orderBy(F.col(score).desc(), F.col(tie).asc())
    return df.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= n)


# --- worker-side (numpy) helpers of the in-task scorers (item-CF, EASE) ------------------------


def sorted_ids(ids: Iterable[Any]) -> np.ndarray:
    """Distinct ids in Spark's string order (UTF-8 bytes = code points), as an object array:
    index order is then the ``item_id`` ascending tie-break of :func:`top_n`."""
    return np.array(sorted(set(ids)), dtype=object)


def csr_rows(
    lists: pd.Series, index: pd.Index, weights: pd.Series | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays (indptr, indices, data) of one batch of per-user lists of ids; ids missing
    from ``index`` are dropped; ``data`` is the list of ``weights`` or 1.0 (duplicates kept:
    scipy sums them)."""
    lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    flat = np.concatenate(list(lists)) if len(lists) else np.array([], dtype=object)
    cols = index.get_indexer(flat)
    if weights is None:
        data = np.ones(len(cols), dtype=np.float64)
    else:
        data = (
            np.concatenate(list(weights)).astype(np.float64)
            if len(weights)
            else np.array([], dtype=np.float64)
        )
    row = np.repeat(np.arange(len(lists), dtype=np.int64), lengths)
    keep = cols >= 0
    row, cols, data = row[keep], cols[keep], data[keep]
    indptr = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=len(lists)), out=indptr[1:])
    return indptr, cols.astype(np.int64), data


def top_entries(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``n`` highest ``vals`` per row among (row, col, val) entries, ties broken by the
    lower col (= the lower id when cols index :func:`sorted_ids`): exactly :func:`top_n`'s
    order. Returned sorted by row, then rank."""
    if len(rows) == 0:
        return rows, cols, vals
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    first = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    starts = np.repeat(first, np.diff(np.r_[first, len(rows)]))
    keep = (np.arange(len(rows)) - starts) < n
    return rows[keep], cols[keep], vals[keep]


def kth_lower_bound(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row a value ``t`` with at least ``k`` entries ``>= t`` (so ``t`` <= the row's k-th
    largest): the k-th largest of the maxima of ``m // seg`` strided column groups. Much
    cheaper than a partition of the whole row (an elementwise maximum, then a partition of
    a row 8 times shorter); usually only a few entries beyond the top k pass it."""
    r, m = scores.shape
    seg = max(1, min(8, m // max(k, 1)))
    g = m // seg
    maxima = scores[:, : seg * g].reshape(r, seg, g).max(axis=1)
    if seg * g < m:
        maxima = np.concatenate([maxima, scores[:, seg * g :]], axis=1)
    width = maxima.shape[1]
    return np.partition(maxima, width - k, axis=1)[:, width - k]


def top_dense(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`top_entries` of a dense (rows × cols) score matrix: every row's ``n`` best."""
    r, m = scores.shape
    k = min(n, m)
    if k <= 0 or r == 0:
        empty = np.array([], dtype=np.int64)
        return empty, empty, np.array([], dtype=scores.dtype)
    t = kth_lower_bound(scores, k)
    flat = np.flatnonzero(scores >= t[:, None])
    rows, cols = np.divmod(flat, m)
    return top_entries(rows, cols, scores.ravel()[flat], k)


def top_sparse(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`top_entries` of a CSR matrix (only its stored entries compete)."""
    lengths = np.diff(indptr)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = indices.astype(np.int64)
    long = np.flatnonzero(lengths > n)
    if n > 0 and len(long):
        # pad the long rows to a dense (rows × longest) block, -inf elsewhere; keep only the
        # entries at or above a lower bound of their row's n-th largest
        slot = np.full(len(lengths), -1, dtype=np.int64)
        slot[long] = np.arange(len(long))
        in_long = slot[rows] >= 0
        pad = np.full((len(long), int(lengths.max())), -np.inf, dtype=np.float64)
        pos = np.arange(len(rows)) - indptr[rows]
        pad[slot[rows[in_long]], pos[in_long]] = data[in_long]
        t = np.full(len(lengths), -np.inf)
        t[long] = kth_lower_bound(pad, n)
        keep = data >= t[rows]
        rows, cols, data = rows[keep], cols[keep], data[keep]
    return top_entries(rows, cols, data, n)


EMIT_ROWS = 1_000_000  # Gram entries per yielded pandas frame


def upper_gram(mats: Sequence[Any]) -> Iterator[pd.DataFrame]:
    """(i, j, c) frames of the upper triangle of ``XᵀX`` for the stacked sparse 0/1 user rows
    ``mats`` (one partition's co-occurrence counts), ``EMIT_ROWS`` entries at a time."""
    if not mats:
        return
    x = sp.vstack(mats, format="csr")
    g = sp.triu(x.T.tocsr() @ x).tocoo()
    for lo in range(0, g.nnz, EMIT_ROWS):
        hi = lo + EMIT_ROWS
        yield pd.DataFrame(
            {
                "i": g.row[lo:hi].astype(np.int32),
                "j": g.col[lo:hi].astype(np.int32),
                "c": g.data[lo:hi].astype(np.int64),
            }
        )
