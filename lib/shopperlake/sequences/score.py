"""``score --model sasrec --as-of D`` (job ``score_sasrec``): next-item recommendations from the
current SASRec version for every user of ``gold.user_sequences`` as of D.

A user's history is every item step of the day's sequence (distinct items in the order first
met, :func:`shopperlake.seqmodel.loo.item_steps`, users with at least one step), the latest
``max_len`` of them as the model's input; items the model never saw are skipped in the input.
The user's representation at the last position is scored against every item embedding on the
executors (weights broadcast once, the model built once per Python worker); items of the
history are removed unless ``--keep-seen``; the top ``sequences.sasrec.top_n`` go to
``gold.next_item_recommendations`` (replaceWhere on the as-of date), with the model version.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shopperlake.core.cli import Job, JobContext
from shopperlake.core.errors import InputError
from shopperlake.seqmodel import loo
from shopperlake.seqmodel.retrieval import SCORED, next_item_scorer
from shopperlake.seqmodel.sasrec import MODEL, load_version
from shopperlake.training.registry import Registry

TABLE = "gold.next_item_recommendations"
SOURCE = "gold.user_sequences"


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=MODEL, choices=[MODEL])
    parser.add_argument("--version", default=None, help="model version (default: current)")
    parser.add_argument("--keep-seen", dest="keep_seen", action="store_true",
                        help="do not remove the items of the user's history")  # fmt: skip


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
            next_item_scorer(shipped, f"{mv.version}-{time.time_ns()}", n, ctx.args.keep_seen),
            SCORED,
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
