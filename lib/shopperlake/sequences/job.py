"""``build_sequences --as-of D``: gold.user_sequences for one as-of date (replaceWhere), users
flagged by ``anomalies.exclude`` left out, like the profiles."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shopperlake.core.cli import Job, JobContext
from shopperlake.core.errors import ConfigError, InputError
from shopperlake.core.exclusion import without_flagged
from shopperlake.core.schemas import EVENT_TYPES
from shopperlake.seqmodel.build import user_sequences

TABLE = "gold.user_sequences"


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-len", type=int, default=None, help="events kept per user")


def body(ctx: JobContext) -> int:
    if ctx.as_of is None:
        raise InputError("build_sequences needs --as-of YYYY-MM-DD (the snapshot date)")
    max_len = int(
        ctx.cfg.get("sequences.max_len") if ctx.args.max_len is None else ctx.args.max_len
    )
    if max_len < 1:
        raise InputError(f"--max-len must be >= 1, got {max_len}")
    types = [str(t) for t in ctx.cfg.get("sequences.event_types")]
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown:
        raise ConfigError(f"sequences.event_types: unknown event type(s) {', '.join(unknown)}")
    events = without_flagged(
        ctx.lake.read("bronze.events"), ctx.lake, ctx.cfg, ctx.as_of, ctx.run.metrics
    )
    rows = user_sequences(
        events, ctx.as_of, max_len, types, int(ctx.cfg.get("sequences.min_events"))
    )
    with ctx.progress.stage(f"write {TABLE} as of {ctx.as_of}"):
        ctx.lake.overwrite_where(TABLE, rows, {"as_of_date": ctx.as_of})
    written = ctx.lake.read(TABLE).where(F.col("as_of_date") == F.lit(ctx.as_of))
    stats = written.agg(F.count(F.lit(1)).alias("users"), F.sum("length").alias("events")).first()
    users = int(stats["users"]) if stats else 0
    ctx.run.rows_written = users
    ctx.run.metrics.update(
        {"users": float(users), "events_kept": float(stats["events"] or 0) if stats else 0.0,
         "max_len": float(max_len)}
    )  # fmt: skip
    print(f"{TABLE} as of {ctx.as_of}: {users:,} users, last {max_len} item events each")
    return users


BUILD_SEQUENCES = Job(
    name="build_sequences",
    description="Build gold.user_sequences for --as-of: each user's last N item events before "
    "the end of the day as arrays (item, event type, category, time gap, position).",
    add_args=add_args,
    body=body,
    reads=("bronze.events", "gold.user_anomalies"),
    writes=(TABLE,),
)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return BUILD_SEQUENCES.main(argv, spark)
