"""``./submit.sh backfill --from D1 --to D2``: the daily chain for each day, in order.

The tasks are the daily DAG's (:func:`shopperlake.schedule.daily_tasks`: ingest the day's
files, detect anomalies, profiles, segments, scores, forecasts), run in this process with one
Spark session, day after day, each with ``--as-of`` the day; ``--jobs`` keeps some of them.

A task is skipped (unless ``--force``) when ``meta.runs`` holds a successful run of the same
job with the same arguments whose inputs are unchanged as far as its day can see: every table
it read (other than its own outputs) is at the version it recorded, or every later commit that
changed data (``dataChange`` add or remove actions in the Delta log) touched only date
partitions after the day (a point-in-time job as of D never reads them). So a finished day is
skipped when a later day is added, and re-run when a late event of that day, an erasure or an
expiry changed what it read. ``ingest`` is never skipped: its input is files, which have no
versions; it is idempotent, so a re-run adds nothing. Re-running a backfill therefore changes
nothing. A failed task stops the backfill at its day and prints the command that resumes from
there.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shopperlake.core.cli import base_parser, parse_date, recorded_params
from shopperlake.core.config import load_config
from shopperlake.core.errors import InputError, ShopperLakeError
from shopperlake.core.lake import Lake
from shopperlake.core.session import build_session
from shopperlake.jobs import resolve, run
from shopperlake.schedule import AS_OF, Task, daily_tasks

log = logging.getLogger(__name__)
ALWAYS_RUN = frozenset({"ingest"})  # reads files: nothing to compare
IGNORED_PARAMS = frozenset({"log_level"})


@dataclass(frozen=True)
class Step:
    day: dt.date
    task: Task
    argv: list[str]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="shopperlake backfill", description=__doc__)
    parser.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD")
    parser.add_argument("--to", dest="end", required=True, help="last day, YYYY-MM-DD")
    parser.add_argument("--source", required=True, help="the source of the daily files")
    parser.add_argument(
        "--input", default=None, help="the day's files; '{{ ds }}' becomes the day (ingest)"
    )
    parser.add_argument("--jobs", default=None, help="comma-separated task ids (default: all)")
    parser.add_argument("--force", action="store_true", help="run tasks that would be skipped")
    parser.add_argument("--env", default="local")
    parser.add_argument("--lake", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


def plan(args: argparse.Namespace, lake: str) -> list[Step]:
    """Every (day, task) in order, the task's arguments for that day."""
    start, end = parse_date(args.start, "--from"), parse_date(args.end, "--to")
    if end < start:
        raise InputError(f"--to {end} is before --from {start}")
    tasks = daily_tasks(args.source, args.input or "", lake)
    if args.jobs:
        wanted = [j.strip() for j in str(args.jobs).split(",") if j.strip()]
        unknown = sorted(set(wanted) - {t.task_id for t in tasks})
        if unknown:
            raise InputError(f"--jobs: unknown task(s) {', '.join(unknown)} (the daily tasks: "
                             f"{', '.join(t.task_id for t in tasks)})")  # fmt: skip
        tasks = [t for t in tasks if t.task_id in wanted]
    if any(t.job == "ingest" for t in tasks) and not args.input:
        raise InputError("--input is required when the backfill ingests (it may hold {{ ds }})")
    common = ["--env", args.env, "--log-level", args.log_level, *[f"--set={s}" for s in args.set]]
    steps = []
    day = start
    while day <= end:
        for t in tasks:
            argv = [a.replace(AS_OF, day.isoformat()) for a in t.args]
            steps.append(Step(day, t, [*argv, *common]))
        day += dt.timedelta(days=1)
    return steps


def params_of(job: str, argv: list[str]) -> dict[str, Any]:
    """What ``meta.runs.params`` holds for ``job`` run with ``argv`` (the same parser), without
    the log level."""
    spec = resolve(job, argv)
    parser = base_parser(spec.name, spec.description)
    spec.add_args(parser)
    params = recorded_params(spec, parser.parse_args(argv))
    out: dict[str, Any] = json.loads(json.dumps(params, sort_keys=True, default=str))
    return {k: v for k, v in out.items() if k not in IGNORED_PARAMS}


def unchanged(lake: Lake, table: str, version: int, day: dt.date) -> bool:
    """True when ``table`` holds the same data at version ``version`` and now, for a job as of
    ``day``: no later commit changed data, or all that did were in date partitions after
    ``day``. Unreadable history (log files cleaned up) counts as a change."""
    if table not in lake.tables() or not lake.exists(table):
        return False
    changed = lake.changed_dates_since(table, version)
    if changed is None:
        return False
    return all(value is not None and value > day.isoformat() for value in changed)


def done_before(lake: Lake, step: Step) -> str | None:
    """The run id of a successful earlier run of the step whose tables are unchanged for its
    day, or None."""
    spec = resolve(step.task.job, step.argv)
    if spec.name in ALWAYS_RUN or not lake.exists("meta.runs"):
        return None
    params = params_of(step.task.job, step.argv)
    runs = (
        lake.read("meta.runs")
        .where(
            (F.col("job") == spec.name)
            & (F.col("as_of") == F.lit(step.day))
            & (F.col("status") == "success")
        )  # fmt: skip
        .orderBy(F.desc("started_at"))
        .collect()
    )
    for r in runs:
        recorded = {k: v for k, v in json.loads(r["params"]).items() if k not in IGNORED_PARAMS}
        if recorded != params:
            continue
        # what it read, less its own outputs (detect_anomalies reads its earlier days)
        outputs = set(r["outputs"] or {})
        read = {t: v for t, v in (r["inputs"] or {}).items() if t not in outputs}
        if all(v is not None and unchanged(lake, t, int(v), step.day) for t, v in read.items()):
            return str(r["run_id"])
        return None  # the latest matching run is stale: run again
    return None


def backfill(spark: SparkSession, args: argparse.Namespace) -> int:
    cfg = load_config(args.env, args.set)
    lake = Lake.from_config(spark, cfg, args.lake)
    steps = plan(args, lake.root)
    for i, step in enumerate(steps):
        name = f"{step.day} {step.task.task_id}"
        earlier = None if args.force else done_before(lake, step)
        if earlier is not None:
            print(f"{name}: skipped (run {earlier}, its tables unchanged for {step.day})",
                  flush=True)  # fmt: skip
            continue
        started = time.monotonic()
        code = run(step.task.job, step.argv, spark)
        if code != 0:
            print(f"{name}: failed (exit {code}); the days before {step.day} are done. Resume "
                  f"with: ./submit.sh backfill {resume_args(args, step.day)}",
                  file=sys.stderr, flush=True)  # fmt: skip
            return code
        print(f"{name}: ran in {time.monotonic() - started:.1f} s ({i + 1}/{len(steps)})",
              flush=True)  # fmt: skip
    return 0


def resume_args(args: argparse.Namespace, day: dt.date) -> str:
    parts = ["--from", day.isoformat(), "--to", args.end, "--source", args.source,
             "--env", args.env]  # fmt: skip
    if args.lake:
        parts += ["--lake", args.lake]
    if args.input:
        parts += ["--input", f"'{args.input}'"]
    if args.jobs:
        parts += ["--jobs", args.jobs]
    parts += [f"--set '{s}'" for s in args.set]
    return " ".join(parts)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING))
    try:
        if spark is None:
            spark = build_session(load_config(args.env, args.set), "shopperlake-backfill")
        return backfill(spark, args)
    except ShopperLakeError as exc:
        print(f"shopperlake backfill: error: {exc}", file=sys.stderr)
        return 2
