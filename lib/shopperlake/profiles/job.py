"""``build_profiles --as-of D``: ``bronze.events`` (+ items, users) → ``gold.user_profiles``.

Point-in-time: only events strictly before the end of day D are read, and user attributes and
item categories are the versions valid at the end of day D. The snapshot of D is
written with ``replaceWhere as_of_date = D``: re-running D replaces exactly that snapshot and
older snapshots stay (point-in-time training sets read them).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import time
from collections.abc import Iterator, Sequence

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shopperlake.core.cli import Job, JobContext
from shopperlake.core.errors import InputError
from shopperlake.core.exclusion import without_flagged
from shopperlake.profiles.features import (
    ALL,
    ProfileParams,
    apply_tags,
    assemble_profiles,
    parse_tag_rules,
    point_in_time,
    profile_grain,
    tag_thresholds,
)

log = logging.getLogger(__name__)

TABLE = "gold.user_profiles"
KEEP_CACHED_PARTITIONING = "spark.sql.optimizer.canChangeCachedPlanOutputPartitioning"
# Runtime SQL settings of the profile computation (restored afterwards):
PROFILE_SQL_CONF = {
    # the persisted grain keeps its hash partitioning by user: no rollup shuffles it again
    KEEP_CACHED_PARTITIONING: "false",
    # per-user collect_list/percentile aggregations hold a user per entry: the default (128
    # entries per task) falls back to a spilling sort-based aggregation at once; 200k users
    # per task stay well within memory
    "spark.sql.objectHashAggregate.sortBased.fallbackThreshold": "200000",
}


@contextlib.contextmanager
def sql_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """Set a runtime SQL conf for the block, then restore what it was."""
    saved = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if saved is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, saved)


@contextlib.contextmanager
def sql_confs(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """:func:`sql_conf` for several settings."""
    with contextlib.ExitStack() as stack:
        for key, value in settings.items():
            stack.enter_context(sql_conf(spark, key, value))
        yield


def add_args(parser: argparse.ArgumentParser) -> None:
    """No flags beyond the common ones: --as-of is required (checked in the body)."""


def _optional(ctx: JobContext, name: str) -> DataFrame | None:
    """``bronze.items`` / ``bronze.users`` with their history, or None when absent."""
    if not ctx.lake.exists(name):
        return None
    ctx.lake.require_schema(name)
    return ctx.lake.read(name)


def body(ctx: JobContext) -> int:
    if ctx.as_of is None:
        raise InputError("build_profiles needs --as-of YYYY-MM-DD (the snapshot date)")
    as_of = ctx.as_of
    params = ProfileParams.from_config(ctx.cfg.section("profiles"))
    rules = parse_tag_rules(ctx.cfg.get("profiles.tags") or {})
    events = point_in_time(ctx.lake.read("bronze.events"), as_of)
    events = without_flagged(events, ctx.lake, ctx.cfg, as_of, ctx.run.metrics)
    sources = list(ctx.cfg.get("profiles.sources") or [])
    if sources:
        events = events.where(F.col("source").isin(*sources))
    grain = profile_grain(events, as_of, _optional(ctx, "bronze.items"))
    users = _optional(ctx, "bronze.users")
    with sql_confs(ctx.spark, PROFILE_SQL_CONF):
        # Every rollup reads the grain: materialise it once instead of re-aggregating raw
        # events; the profiles are then materialised once for the tags, the write and stats.
        grain = grain.persist(StorageLevel.MEMORY_AND_DISK)
        profiles = assemble_profiles(grain, as_of, params, users)
        profiles = profiles.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            started = time.monotonic()
            with ctx.progress.stage("user x day grain") as stage:
                stage.rows = grain.count()
            ctx.run.metrics["grain_rows"] = float(stage.rows)
            ctx.run.metrics["seconds.grain"] = round(time.monotonic() - started, 1)
            started = time.monotonic()
            with ctx.progress.stage("profiles") as stage:
                stage.rows = profiles.count()
            ctx.run.metrics["seconds.profiles"] = round(time.monotonic() - started, 1)
        except BaseException:
            profiles.unpersist()
            grain.unpersist()
            raise
    try:
        thresholds = tag_thresholds(profiles, rules)
        for (expression, q), value in thresholds.items():
            log.info("tag threshold p(%s, %s) = %s", expression, q, value)
            if value is not None:
                ctx.run.metrics[f"tag_threshold.p({expression}, {q})"] = value
        tagged = apply_tags(profiles, rules, thresholds)
        started = time.monotonic()
        with ctx.progress.stage(f"write {TABLE} as of {as_of}"):
            ctx.lake.overwrite_where(TABLE, tagged, {"as_of_date": as_of})
        ctx.run.metrics["seconds.write"] = round(time.monotonic() - started, 1)
        stats = profiles.agg(
            F.count(F.lit(1)).alias("users"),
            F.sum(F.col("activity")[ALL]["events"]).alias("events"),
        ).first()
    finally:
        profiles.unpersist()
        grain.unpersist()
    n_users = int(stats["users"]) if stats else 0
    events_read = int(stats["events"] or 0) if stats else 0
    ctx.run.rows_read = events_read
    ctx.run.rows_written = n_users
    ctx.run.metrics["users"] = float(n_users)
    log.info("%s as of %s: %d users from %d events", TABLE, as_of, n_users, events_read)
    return n_users


BUILD_PROFILES = Job(
    name="build_profiles",
    description="Build the point-in-time user profile snapshot gold.user_profiles for --as-of.",
    add_args=add_args,
    body=body,
    reads=("bronze.events", "bronze.users", "bronze.items", "gold.user_anomalies"),
    writes=(TABLE,),
)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return BUILD_PROFILES.main(argv, spark)
