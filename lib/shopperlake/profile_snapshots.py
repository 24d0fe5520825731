"""Profile snapshots on demand, for jobs that need features as of a past date."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shopperlake.build_profiles import TABLE
from shopperlake.build_profiles import body as build_profiles_body
from shopperlake.cli import JobContext
from shopperlake.errors import InputError

log = logging.getLogger(__name__)


def read_snapshot(ctx: JobContext, as_of: dt.date) -> DataFrame | None:
    """The ``gold.user_profiles`` snapshot of ``as_of``, or None when it was never built."""
    if not ctx.lake.exists(TABLE):
        return None
    snap = ctx.lake.read(TABLE).where(F.col("as_of_date") == F.lit(as_of))
    return snap if snap.limit(1).count() else None


def ensure_profiles(ctx: JobContext, as_of: dt.date) -> DataFrame:
    """Read the snapshot of ``as_of``; build and write it first when it is missing (inside
    the calling job's transaction and run record)."""
    snap = read_snapshot(ctx, as_of)
    if snap is not None:
        return snap
    log.info("profile snapshot %s missing: building it", as_of)
    saved = (ctx.run.rows_read, ctx.run.rows_written)
    build_profiles_body(dataclasses.replace(ctx, as_of=as_of))
    ctx.run.rows_read, ctx.run.rows_written = saved
    built = read_snapshot(ctx, as_of)
    if built is None:
        raise InputError(
            f"the profile snapshot of {as_of} has no users (no events before the end of that "
            "day): choose later cutoffs (--cutoffs, or fewer models.<name>.auto_cutoffs)"
        )
    return built
