"""Next-item retrieval with a SASRec model on the executors: each user's item history (the
latest ``max_len`` known items) through the encoder, the representation at the last position
scored against every item embedding, every item of the given history (not only the encoded
tail) removed unless ``keep_seen``, the top ``n``
(score descending, ties to the lower item index). Used by ``score --model sasrec`` and by the
recommender's ``sasrec`` source."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
from pyspark.broadcast import Broadcast
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

from shopperlake.seqmodel import sasrec
from shopperlake.seqmodel.build import FUNNEL
from shopperlake.seqmodel.sasrec import SasRecParams, Vocab

SCORED = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("rank", IntegerType(), False),
        StructField("item_id", StringType(), False),
        StructField("score", DoubleType(), False),
    ]
)
_CACHE: dict[str, Any] = {}


def top_next_items(
    model: Any, item_ids: np.ndarray, index: dict[str, int], pdf: pd.DataFrame, p: SasRecParams,
    n: int, keep_seen: bool,
) -> pd.DataFrame:  # fmt: skip
    """(user_id, rank, item_id, score): each row's top ``n`` next items."""
    types_of = {name: i + 1 for i, name in enumerate(FUNNEL)}
    length = p.max_len
    items = np.zeros((len(pdf), length), np.int32)
    types = np.zeros((len(pdf), length), np.int32)
    seen: list[list[int]] = []
    for r, (ids, kinds) in enumerate(zip(pdf["item_ids"], pdf["event_types"], strict=True)):
        known = [(index[i], types_of.get(k, 0)) for i, k in zip(ids, kinds, strict=True)
                 if i in index]  # fmt: skip
        seen.append([i for i, _ in known])  # the whole history, not only the encoded tail
        pairs = known[-length:]
        if pairs:
            items[r, length - len(pairs) :] = [i for i, _ in pairs]
            types[r, length - len(pairs) :] = [k for _, k in pairs]
    s = sasrec.scores(model, items, types)
    s[:, 0] = -np.inf
    if not keep_seen:
        for r, items_seen in enumerate(seen):
            s[r, items_seen] = -np.inf
    top = min(n, s.shape[1] - 1)
    part = np.argpartition(-s, top - 1, axis=1)[:, :top]
    vals = np.take_along_axis(s, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)  # score descending, then lower index
    best = np.take_along_axis(part, order, axis=1)
    best_s = np.take_along_axis(vals, order, axis=1)
    keep = np.isfinite(best_s)
    rows, cols = np.nonzero(keep)
    return pd.DataFrame(
        {
            "user_id": pdf["user_id"].to_numpy()[rows],
            "rank": (cols + 1).astype(np.int32),
            "item_id": item_ids[best[rows, cols] - 1],
            "score": best_s[rows, cols].astype(np.float64),
        }
    )


def next_item_scorer(
    shipped: Broadcast[tuple[Vocab, SasRecParams, list[np.ndarray], list[str]]], key: str,
    n: int, keep_seen: bool, rows: int = 512,
) -> Callable[[Any], Any]:  # fmt: skip
    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        cached = _CACHE.get(key)
        if cached is None:
            vocab, params, weights, ids = shipped.value
            model = sasrec.restore(vocab, params, weights)
            names = np.array(ids, dtype=object)
            cached = (model, names, {v: i + 1 for i, v in enumerate(ids)}, params)
            _CACHE.clear()
            _CACHE[key] = cached
        model, names, index, params = cached
        for pdf in batches:
            for start in range(0, len(pdf), rows):
                yield top_next_items(
                    model, names, index, pdf.iloc[start : start + rows], params, n, keep_seen
                )

    return run
