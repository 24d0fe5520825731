"""Reading profile snapshots, and building missing ones for jobs that declare it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shopperlake.core.cli import JobContext
from shopperlake.core.errors import InputError
from shopperlake.profiles.job import TABLE
from shopperlake.profiles.job import body as build_profiles_body

log = logging.getLogger(__name__)


def read_snapshot(ctx: JobContext, as_of: dt.date) -> DataFrame | None:
    """The ``gold.user_profiles`` snapshot of ``as_of``, or None when it was never built."""
    if not ctx.lake.exists(TABLE):
        return None
    snap = ctx.lake.read(TABLE).where(F.col("as_of_date") == F.lit(as_of))
    return snap if snap.limit(1).count() else None


def ensure_profiles(ctx: JobContext, as_of: dt.date) -> DataFrame:
    """The snapshot of ``as_of``. When it is missing, a job that declares
    ``builds=("gold.user_profiles",)`` builds and writes it (inside its own transaction; counted
    in ``meta.runs`` as metric ``built.gold.user_profiles`` with the dates in its params); any
    other job fails naming the snapshot and the command that builds it."""
    snap = read_snapshot(ctx, as_of)
    if snap is not None:
        return snap
    if TABLE not in ctx.builds:
        raise InputError(
            f"no {TABLE} snapshot for {as_of}: build it first with "
            f"./submit.sh build_profiles --as-of {as_of}"
        )
    log.info("profile snapshot %s missing: building it (declared on-demand step)", as_of)
    saved = (ctx.run.rows_read, ctx.run.rows_written)
    build_profiles_body(dataclasses.replace(ctx, as_of=as_of))
    ctx.run.rows_read, ctx.run.rows_written = saved
    key = f"built.{TABLE}"
    ctx.run.metrics[key] = ctx.run.metrics.get(key, 0.0) + 1.0
    ctx.run.params.setdefault(key, []).append(as_of.isoformat())
    built = read_snapshot(ctx, as_of)
    if built is None:
        raise InputError(
            f"the profile snapshot of {as_of} has no users (no events before the end of that "
            "day): choose later cutoffs (--cutoffs, or fewer models.<name>.auto_cutoffs)"
        )
    return built
