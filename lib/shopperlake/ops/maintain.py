"""``maintain``: keep the Delta tables fast and bounded.

For every existing table (or those ``--tables`` names, globs allowed), in this order:

1. **expire**: tables in ``maintenance.expire_after_days`` lose the partitions whose date
   partition column is more than N days before ``--as-of`` (default: today);
2. **compact**: OPTIMIZE rewrites small files into large ones, Z-ordered by the catalog's
   ``zorder_by`` (the usual lookup key, ``user_id``) within each partition;
3. **vacuum**: VACUUM deletes the files no version younger than
   ``maintenance.vacuum_retention_hours`` needs. Below Delta's safe minimum (168 hours) the job
   refuses unless ``--force``: time travel to, and readers still on, older versions break.

It prints and records (``meta.runs`` metrics) each table's files and bytes before and after:
those of the latest version and those stored (every version's, what VACUUM frees).
Re-running it changes nothing: compacted partitions are left alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql.types import DateType, TimestampType

from shopperlake.core.cli import Job, JobContext
from shopperlake.core.config import Config
from shopperlake.core.errors import ConfigError, InputError
from shopperlake.core.lake import Lake, TableSpec, sql_literal

log = logging.getLogger(__name__)
SAFE_RETENTION_HOURS = 168.0  # Delta's default delta.deletedFileRetentionDuration (7 days)
KEYS = frozenset({"vacuum_retention_hours", "expire_after_days"})


@dataclass(frozen=True)
class MaintenanceSpec:
    vacuum_retention_hours: float = SAFE_RETENTION_HOURS
    expire_after_days: dict[str, int] = field(default_factory=dict)


def maintenance_spec(cfg: Config) -> MaintenanceSpec:
    block: dict[str, Any] = dict(cfg.get("maintenance") or {})
    unknown = set(block) - KEYS
    if unknown:
        raise ConfigError(f"maintenance: unknown key(s) {', '.join(sorted(unknown))}")
    hours = block.get("vacuum_retention_hours", SAFE_RETENTION_HOURS)
    if not isinstance(hours, int | float) or isinstance(hours, bool) or hours < 0:
        raise ConfigError(f"maintenance.vacuum_retention_hours must be >= 0, got {hours!r}")
    expire = block.get("expire_after_days") or {}
    if not isinstance(expire, dict):
        raise ConfigError("maintenance.expire_after_days must map table names to days")
    for table, days in expire.items():
        if not isinstance(days, int) or isinstance(days, bool) or days < 1:
            raise ConfigError(
                f"maintenance.expire_after_days.{table} must be a whole number of days >= 1, "
                f"got {days!r}"
            )
    return MaintenanceSpec(float(hours), {str(k): int(v) for k, v in expire.items()})


def date_partition(spec: TableSpec) -> str:
    """The table's date (or timestamp) partition column, which expiry deletes by."""
    types = {f.name: f.dataType for f in spec.schema.fields}
    dated = [c for c in spec.partition_by if isinstance(types.get(c), DateType | TimestampType)]
    if not dated:
        raise ConfigError(
            f"maintenance.expire_after_days names {spec.name}, which has no date partition "
            f"column to expire by (partitioned by {list(spec.partition_by) or 'nothing'})"
        )
    return dated[0]


def check_zorder(spec: TableSpec) -> None:
    columns = {f.name for f in spec.schema.fields}
    wrong = [c for c in spec.zorder_by if c not in columns or c in spec.partition_by]
    if wrong:
        raise ConfigError(
            f"catalog: {spec.name} zorder_by {wrong}: Z-order columns must be columns of the "
            "table and not its partition columns"
        )


def plan(lake: Lake, patterns: Sequence[str], ms: MaintenanceSpec) -> list[str]:
    """The existing tables to maintain; every config error before anything is touched."""
    catalog = set(lake.tables())
    unknown = sorted(set(ms.expire_after_days) - catalog)
    if unknown:
        raise ConfigError(f"maintenance.expire_after_days: unknown table(s) {', '.join(unknown)}")
    for name in ms.expire_after_days:
        date_partition(lake.spec(name))
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(t, p) for t in catalog)]
    if unmatched:
        raise InputError(f"--tables: no table in the catalog matches {', '.join(unmatched)}")
    names = [t for t in sorted(catalog) if any(fnmatch.fnmatchcase(t, p) for p in patterns)]
    for name in names:
        check_zorder(lake.spec(name))
    return [t for t in names if lake.exists(t)]


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tables", nargs="+", default=["*"], metavar="GLOB",
        help="tables to maintain (default: every table of the catalog that exists)",
    )  # fmt: skip
    parser.add_argument(
        "--retention-hours", dest="retention_hours", type=float, default=None,
        help="VACUUM retention (default maintenance.vacuum_retention_hours)",
    )  # fmt: skip
    parser.add_argument(
        "--force", action="store_true",
        help=f"allow a VACUUM retention below {SAFE_RETENTION_HOURS:.0f} hours",
    )  # fmt: skip


def body(ctx: JobContext) -> None:
    ms = maintenance_spec(ctx.cfg)
    hours = (
        ms.vacuum_retention_hours if ctx.args.retention_hours is None else ctx.args.retention_hours
    )
    if hours < 0:
        raise InputError(f"--retention-hours must be >= 0, got {hours}")
    if hours < SAFE_RETENTION_HOURS and not ctx.args.force:
        raise InputError(
            f"VACUUM retention {hours:g} h is below Delta's safe minimum of "
            f"{SAFE_RETENTION_HOURS:.0f} h: versions younger than that could lose their files "
            "(time travel, restores and readers still on them break); pass --force to run anyway"
        )
    lake = ctx.lake
    names = plan(lake, ctx.args.tables, ms)
    today = ctx.as_of or dt.date.today()
    header = (f"{'table':<26}{'expired rows':>13}{'files (latest)':>17}{'files (stored)':>17}"
              f"{'MB (stored)':>17}")  # fmt: skip
    lines = [f"maintain as of {today}, VACUUM retention {hours:g} h", header]
    for name in names:
        spec = lake.spec(name)
        latest_before, stored_before = lake.snapshot_files(name), lake.stored_files(name)
        expired = 0
        if name in ms.expire_after_days:
            column = date_partition(spec)
            cutoff = today - dt.timedelta(days=ms.expire_after_days[name])
            expired = lake.delete_where(name, f"{column} < {sql_literal(cutoff)}")
        compaction = lake.optimize(name, spec.zorder_by)
        lake.vacuum(name, hours, force=ctx.args.force)
        latest_after, stored_after = lake.snapshot_files(name), lake.stored_files(name)
        metrics = {
            "expired_rows": expired,
            "files_added": compaction["files_added"],
            "files_removed": compaction["files_removed"],
            "latest_files_before": latest_before[0],
            "latest_files_after": latest_after[0],
            "stored_files_before": stored_before[0],
            "stored_files_after": stored_after[0],
            "stored_bytes_before": stored_before[1],
            "stored_bytes_after": stored_after[1],
        }
        for key, value in metrics.items():
            ctx.run.metrics[f"{name}.{key}"] = float(value)
        lines.append(
            f"{name:<26}{expired:>13,}{latest_before[0]:>8,} ->{latest_after[0]:>6,}"
            f"{stored_before[0]:>8,} ->{stored_after[0]:>6,}"
            f"{stored_before[1] / 1e6:>8.1f} ->{stored_after[1] / 1e6:>6.1f}"
        )
        log.info("maintained %s: %s", name, metrics)
    print("\n".join(lines))


MAINTAIN = Job(
    name="maintain",
    description="Compact and Z-order the Delta tables, expire old partitions by config, "
    "VACUUM; file counts and sizes before and after.",
    add_args=add_args,
    body=body,
    reads=("*",),
    writes=("*",),
)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return MAINTAIN.main(argv, spark)
