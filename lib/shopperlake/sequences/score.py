"""``score --model sasrec --as-of D`` (job ``score_sasrec``): next-item recommendations from the
current SASRec version for every user of ``gold.user_sequences`` as of D.

A user's history is every item step of the day's sequence (distinct items in the order first
met, :func:`shopperlake.sequences.loo.item_steps`, users with at least one step), the latest
``max_len`` of them as the model's input; items the model never saw are skipped in the input.
The user's representation at the last position is scored against every item embedding on the
executors (weights broadcast once, the model built once per Python worker); items of the
history are removed unless ``--keep-seen``; the top ``sequences.sasrec.top_n`` go to
``gold.next_item_recommendations`` (replaceWhere on the as-of date), with the model version.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pyspark.broadcast import Broadcast
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

from shopperlake.core.cli import Job, JobContext
from shopperlake.core.errors import InputError
from shopperlake.sequences import loo, sasrec
from shopperlake.sequences.build import FUNNEL
from shopperlake.sequences.sasrec import MODEL, SasRecParams, Vocab
from shopperlake.sequences.train import load_version
from shopperlake.training.registry import Registry

TABLE = "gold.next_item_recommendations"
SOURCE = "gold.user_sequences"
SCORED = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("rank", IntegerType(), False),
        StructField("item_id", StringType(), False),
        StructField("score", DoubleType(), False),
    ]
)
_CACHE: dict[str, Any] = {}


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=MODEL, choices=[MODEL])
    parser.add_argument("--version", default=None, help="model version (default: current)")
    parser.add_argument("--keep-seen", dest="keep_seen", action="store_true",
                        help="do not remove the items of the user's history")  # fmt: skip


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
        pairs = [(index[i], types_of.get(k, 0)) for i, k in zip(ids, kinds, strict=True)
                 if i in index][-length:]  # fmt: skip
        seen.append([i for i, _ in pairs])
        if pairs:
            items[r, length - len(pairs) :] = [i for i, _ in pairs]
            types[r, length - len(pairs) :] = [k for _, k in pairs]
    s = sasrec.scores(model, items, types)
    s[:, 0] = -np.inf
    if not keep_seen:
        for r, known in enumerate(seen):
            s[r, known] = -np.inf
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


def _scorer(
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


def body(ctx: JobContext) -> int:
    if ctx.as_of is None:
        raise InputError("score --model sasrec needs --as-of YYYY-MM-DD (the sequences' date)")
    registry = Registry.from_config(ctx.cfg, ctx.lake.root)
    mv = registry.get(MODEL, ctx.args.version)
    vocab, params, weights, item_ids = load_version(mv.path)
    n = params.top_n
    seqs = ctx.lake.read(SOURCE).where(F.col("as_of_date") == F.lit(ctx.as_of))
    users = loo.item_steps(seqs, min_steps=1).select("user_id", "item_ids", "event_types")
    if users.limit(1).count() == 0:
        raise InputError(
            f"{SOURCE} has no rows as of {ctx.as_of}: run build_sequences --as-of {ctx.as_of}"
        )
    shipped = ctx.spark.sparkContext.broadcast((vocab, params, weights, item_ids))
    try:
        scored = users.mapInPandas(
            _scorer(shipped, f"{mv.version}-{time.time_ns()}", n, ctx.args.keep_seen), SCORED
        )
        rows = scored.select(
            "user_id", F.lit(ctx.as_of).alias("as_of_date"), "rank", "item_id", "score",
            F.lit(mv.version).alias("model_version"),
        )  # fmt: skip
        with ctx.progress.stage(f"write {TABLE} as of {ctx.as_of}"):
            ctx.lake.overwrite_where(TABLE, rows, {"as_of_date": ctx.as_of})
    finally:
        shipped.unpersist()
    written = ctx.lake.read(TABLE).where(F.col("as_of_date") == F.lit(ctx.as_of))
    stats = written.agg(F.count(F.lit(1)).alias("rows"),
                        F.countDistinct("user_id").alias("users")).first()  # fmt: skip
    n_rows = int(stats["rows"]) if stats else 0
    n_users = int(stats["users"]) if stats else 0
    ctx.run.rows_written = n_rows
    ctx.run.metrics.update({"users": float(n_users), "top_n": float(n)})
    print(f"{TABLE} as of {ctx.as_of}: {n_users:,} users, top {n} next items each "
          f"(model {MODEL} {mv.version})")  # fmt: skip
    return n_rows


SCORE_SASREC = Job(
    name="score_sasrec",
    description="Next-item recommendations from the current SASRec version for every user of "
    "gold.user_sequences as of --as-of (seen items removed) into "
    "gold.next_item_recommendations.",
    add_args=add_args,
    body=body,
    reads=(SOURCE, "registry/*"),
    writes=(TABLE,),
)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return SCORE_SASREC.main(argv, spark)
