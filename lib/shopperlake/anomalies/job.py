"""``detect_anomalies --as-of D`` → ``gold.feed_anomalies``: the last ``anomalies.feed.days``
days up to D, per source and event type, judged against their seasonal baseline
(:mod:`shopperlake.anomalies.feed`). Re-running replaces the same days with the same rows."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from collections.abc import Sequence

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shopperlake.anomalies.feed import STATUSES, FeedSettings, daily_volumes, judge_days
from shopperlake.core.cli import Job, JobContext
from shopperlake.core.errors import InputError
from shopperlake.core.schemas import FEED_ANOMALIES

log = logging.getLogger(__name__)
FEED = "gold.feed_anomalies"


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source", action="append", default=None,
        help="bronze.events source to monitor (repeatable; default every source)",
    )  # fmt: skip


def body(ctx: JobContext) -> int:
    if ctx.as_of is None:
        raise InputError("detect_anomalies needs --as-of YYYY-MM-DD (the last day judged)")
    settings = FeedSettings.from_config(ctx.cfg)
    last = ctx.as_of
    first = last - dt.timedelta(days=settings.days - 1)
    events = ctx.lake.read("bronze.events")
    if ctx.args.source:
        events = events.where(F.col("source").isin(*ctx.args.source))
    volumes = daily_volumes(events, last)
    if volumes.empty:
        raise InputError(
            f"no events up to {last} (sources {', '.join(ctx.args.source or ['all'])}): "
            "ingest first"
        )
    judged = judge_days(volumes, first, last, settings)
    judged["run_id"] = ctx.run.run_id
    columns = [f.name for f in FEED_ANOMALIES.fields]
    frame = ctx.spark.createDataFrame(judged[columns], schema=FEED_ANOMALIES)
    where: dict[str, object] = {"event_date": (first, last)}
    if ctx.args.source:
        where["source"] = list(ctx.args.source)
    ctx.lake.overwrite_where(FEED, frame, where)
    counts = judged["status"].value_counts()
    ctx.run.rows_read = int(volumes["n"].sum())
    ctx.run.rows_written = len(judged)
    ctx.run.metrics.update({f"feed.{s}": float(counts.get(s, 0)) for s in STATUSES})
    alerts = judged[~judged["status"].isin(["ok", "no_baseline"])].sort_values(
        ["event_date", "source", "event_type"]
    )
    print(
        f"feed anomalies {first} .. {last}: {len(judged)} source x type x day rows, "
        + ", ".join(f"{s} {int(counts.get(s, 0))}" for s in STATUSES),
        flush=True,
    )
    for r in alerts.itertuples():
        expected = "-" if r.expected is None or r.expected != r.expected else f"{r.expected:.0f}"
        print(f"  {r.event_date} {r.source:<16} {r.event_type:<16} {r.status:<8} "
              f"observed {r.observed:,}, expected {expected}", flush=True)  # fmt: skip
    return len(judged)


DETECT_ANOMALIES = Job(
    name="detect_anomalies",
    description="Judge each source's daily event volumes per type against a same-weekday "
    "baseline with a robust trend (gold.feed_anomalies: ok, low, high, missing, new).",
    add_args=add_args,
    body=body,
    reads=("bronze.events",),
    writes=(FEED,),
)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return DETECT_ANOMALIES.main(argv, spark)
