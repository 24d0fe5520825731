"""Lake I/O: the only module that touches Delta.

Logical table names (``bronze.events``) resolve through the catalog (``conf/catalog.yaml``) to
``<lake root>/<layer>/<name>`` or an override. Every write is one Delta commit; a
:meth:`Lake.transaction` makes a multi-table job all-or-nothing by restoring each table it
touched to its previous version when the job fails.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType
from pyspark.sql.utils import AnalysisException

from shopperlake.core.config import Config, load_yaml_text, read_conf_text
from shopperlake.core.errors import ConfigError, LakeError, SchemaError
from shopperlake.core.schemas import IS_CURRENT, SCHEMAS, VALID_FROM, VALID_TO

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"  # the folder value of a null partition column


class Lineage(Protocol):
    """What the run log wants to hear about reads and writes."""

    def record_input(self, table: str, version: int | None) -> None: ...

    def record_output(self, table: str, version: int | None) -> None: ...


@dataclass(frozen=True)
class TableSpec:
    name: str
    location: str
    schema: StructType
    partition_by: tuple[str, ...] = ()
    properties: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    zorder_by: tuple[str, ...] = ()


def load_catalog(extra: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """``conf/catalog.yaml`` plus the ``catalog`` section of the config (later issues' tables)."""
    entries = load_yaml_text(read_conf_text("catalog.yaml"), "conf/catalog.yaml")
    for name, spec in (extra or {}).items():
        entries[name] = spec
    for name, spec in entries.items():
        if not _NAME.match(name):
            raise ConfigError(f"catalog: table name '{name}' must look like layer.name")
        if not isinstance(spec, dict) or "schema" not in spec:
            raise ConfigError(f"catalog: table '{name}' needs a 'schema'")
    return entries


def normalise_root(root: str) -> str:
    """Absolute local path or an untouched URI (file:, hdfs:, s3a:, abfss:, gs:, ...)."""
    parsed = urlparse(root)
    if parsed.scheme and len(parsed.scheme) > 1:
        return root.rstrip("/")
    return str(Path(root).expanduser().resolve())


def sql_literal(value: Any) -> str:
    """Render a Python value as a Spark SQL literal (for replaceWhere, which takes a string)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP'{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE'{value.isoformat()}'"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        return f"'{escaped}'"
    raise LakeError(f"cannot use {type(value).__name__} value {value!r} in a partition predicate")


def partition_predicate(where: Mapping[str, Any]) -> str:
    """``{col: value}`` / ``{col: (lo, hi)}`` (inclusive range) / ``{col: [v, ...]}`` → SQL."""
    parts = []
    for column, value in where.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", column):
            raise LakeError(f"invalid column name in predicate: {column!r}")
        if isinstance(value, tuple):
            lo, hi = value
            parts.append(f"{column} >= {sql_literal(lo)} AND {column} <= {sql_literal(hi)}")
        elif isinstance(value, list | frozenset | set):
            if not value:
                raise LakeError(f"empty value list for {column} in a partition predicate")
            literals = ", ".join(sql_literal(v) for v in sorted(value))
            parts.append(f"{column} IN ({literals})")
        else:
            parts.append(f"{column} = {sql_literal(value)}")
    if not parts:
        raise LakeError("empty partition predicate")
    return " AND ".join(parts)


class Lake:
    """Catalog-aware access to the Delta tables under one lake root."""

    def __init__(
        self,
        spark: SparkSession,
        root: str,
        catalog: Mapping[str, Mapping[str, Any]],
        locations: Mapping[str, str] | None = None,
    ) -> None:
        self.spark = spark
        self.root = normalise_root(root)
        self._catalog = dict(catalog)
        self._locations = dict(locations or {})
        self.lineage: Lineage | None = None
        # (job, reads, writes) of the running job: touching any other table is an error.
        self.declared: tuple[str, frozenset[str], frozenset[str]] | None = None
        # job name -> tables it writes (the job registry's declarations, set by job_main), so
        # that a missing table's error names the command that builds it
        self.writers: Mapping[str, Sequence[str]] = {}
        self._txn: list[dict[str, int | None]] = []

    @classmethod
    def from_config(cls, spark: SparkSession, cfg: Config, root: str | None = None) -> Lake:
        return cls(
            spark,
            root or cfg.require("lake.root"),
            load_catalog(cfg.get("catalog")),
            cfg.get("lake.locations") or {},
        )

    # -- catalog -------------------------------------------------------------------------------
    def spec(self, name: str) -> TableSpec:
        entry = self._catalog.get(name)
        if entry is None:
            raise LakeError(f"unknown table '{name}' (not in the catalog)")
        schema_name = entry["schema"]
        schema = SCHEMAS.get(schema_name)
        if schema is None:
            raise ConfigError(f"catalog: table '{name}' names unknown schema '{schema_name}'")
        layer, table = name.split(".")
        location = self._locations.get(name) or f"{self.root}/{layer}/{table}"
        return TableSpec(
            name=name,
            location=location,
            schema=schema,
            partition_by=tuple(entry.get("partition_by") or ()),
            properties={str(k): str(v) for k, v in (entry.get("properties") or {}).items()},
            description=str(entry.get("description", "")),
            zorder_by=tuple(entry.get("zorder_by") or ()),
        )

    def tables(self) -> list[str]:
        return sorted(self._catalog)

    def location(self, name: str) -> str:
        return self.spec(name).location

    # -- reading -------------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        return bool(DeltaTable.isDeltaTable(self.spark, self.location(name)))

    def version(self, name: str) -> int | None:
        """Latest committed version, or None when the table does not exist yet."""
        if not self.exists(name):
            return None
        row = self._delta(name).history(1).select("version").first()
        return int(row["version"]) if row else None

    def read(
        self,
        name: str,
        version: int | None = None,
        timestamp: str | None = None,
        required: bool = True,
    ) -> DataFrame:
        """Latest snapshot, or time travel to ``version`` / ``timestamp``.

        A missing table is an error when ``required``; otherwise an empty frame of its schema.
        """
        spec = self.spec(name)
        self._check_declared(name, "reads")
        if not self.exists(name):
            if required:
                writers = [job for job, outputs in self.writers.items()
                           if any(fnmatch.fnmatchcase(name, o) for o in outputs)]  # fmt: skip
                how = (
                    "build it with " + " or ".join(f"./submit.sh {w}" for w in writers)
                    if writers
                    else "run the job that writes it"
                )
                raise LakeError(f"table '{name}' does not exist at {spec.location}: {how}")
            return self.spark.createDataFrame([], spec.schema)
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        elif timestamp is not None:
            reader = reader.option("timestampAsOf", timestamp)
        try:
            df = reader.load(spec.location)
        except AnalysisException as exc:
            raise LakeError(f"cannot read '{name}' ({spec.location}): {exc}") from exc
        if self.lineage is not None:
            self.lineage.record_input(name, version if version is not None else self.version(name))
        return df

    def history(self, name: str, limit: int | None = None) -> DataFrame:
        return self._delta(name).history(limit) if limit else self._delta(name).history()

    def last_commit_metrics(self, name: str) -> dict[str, str]:
        row = self._delta(name).history(1).select("operationMetrics").first()
        return dict(row["operationMetrics"] or {}) if row else {}

    # -- writing -------------------------------------------------------------------------------
    def create(self, name: str) -> None:
        """Create the table with its catalog schema, partitioning and properties if absent."""
        spec = self.spec(name)
        self._check_declared(name, "writes")
        if self.exists(name):
            return
        self._check_writable(spec)
        builder = (
            DeltaTable.createIfNotExists(self.spark).location(spec.location).addColumns(spec.schema)
        )
        if spec.partition_by:
            builder = builder.partitionedBy(*spec.partition_by)
        for key, value in spec.properties.items():
            builder = builder.property(key, value)
        if spec.description:
            builder = builder.comment(spec.description)
        try:
            builder.execute()
        except Exception as exc:
            raise LakeError(f"cannot create table '{name}' at {spec.location}: {exc}") from exc
        log.info("created %s at %s", name, spec.location)

    def append(self, name: str, df: DataFrame) -> int:
        return self._write(name, df, mode="append")

    def overwrite_where(self, name: str, df: DataFrame, where: Mapping[str, Any]) -> int:
        """Replace exactly the rows matching ``where`` (typically one partition) with ``df``."""
        predicate = partition_predicate(where)
        return self._write(name, df, mode="overwrite", replace_where=predicate)

    def merge(
        self,
        name: str,
        df: DataFrame,
        keys: Sequence[str],
        update: bool = True,
        prune: Mapping[str, Sequence[Any]] | None = None,
        update_when_changed: Sequence[str] | None = None,
    ) -> dict[str, int]:
        """MERGE ``df`` into ``name`` on ``keys``: insert new rows, and update matched rows when
        ``update`` (else matched rows are left alone: insert-only dedupe).

        ``prune`` restricts the target scan to partition values (``{col: [values]}``);
        ``update_when_changed`` updates a matched row only when one of these columns differs
        (so re-merging the same rows changes nothing and counts nothing as updated).
        Returns inserted / updated counts from the commit's metrics.
        """
        spec = self.spec(name)
        self.create(name)
        source = conform(df, spec.schema)
        cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
        for column, values in (prune or {}).items():
            literals = ", ".join(sql_literal(v) for v in values) or "NULL"
            cond += f" AND t.`{column}` IN ({literals})"
        self._begin(name)
        before = self.version(name)
        merger = self._delta(name).alias("t").merge(source.alias("s"), cond)
        if update:
            changed = " OR ".join(f"NOT (t.`{c}` <=> s.`{c}`)" for c in update_when_changed or ())
            merger = merger.whenMatchedUpdateAll(condition=changed or None)
        merger = merger.whenNotMatchedInsertAll()
        try:
            merger.execute()
        except Exception as exc:
            raise LakeError(f"MERGE into '{name}' failed: {exc}") from exc
        return self._merge_counts(name, before)

    def merge_versions(
        self,
        name: str,
        df: DataFrame,
        keys: Sequence[str],
        compare: Sequence[str],
        changed_at: dt.datetime,
        touch: Sequence[str] = (),
    ) -> dict[str, int]:
        """Type-2 MERGE of ``df`` (one row per key, the table's columns but ``valid_to`` and
        ``is_current``; ``valid_from`` = the source's attribute timestamp, or null) into the
        history table ``name``, matched on ``keys`` and the current row.

        A new key inserts a current row valid from its ``valid_from`` (null: since the
        beginning). A key whose current row differs in a ``compare`` column (null-safe) gets
        that row closed (``valid_to`` = the effective time, ``is_current`` false, ``touch``
        columns taken from ``df``) and a new current row valid from the effective time: the
        row's ``valid_from``, else ``changed_at``, but never before the closed row's start (an
        earlier or equal time corrects the current version and leaves an empty interval). An
        unchanged key does nothing, so re-merging the same rows changes no content.

        One MERGE of the staged rows (rows to close, keyed; new versions, with a null key so
        they never match). Returns inserted (new keys + new versions) and updated (closed
        versions) from the commit's metrics.
        """
        spec = self.spec(name)
        self.create(name)
        self.require_schema(name)
        for column in (VALID_FROM, VALID_TO, IS_CURRENT, *keys, *compare, *touch):
            if column not in spec.schema.fieldNames():
                raise SchemaError(f"'{name}' has no column '{column}' for a versioned MERGE")
        rows = conform(
            df.withColumns({VALID_TO: F.lit(None).cast("timestamp"), IS_CURRENT: F.lit(True)}),
            spec.schema,
        )
        current = (
            self.read(name)
            .where(F.col(IS_CURRENT))
            .select(
                *keys,
                F.lit(True).alias("_t_exists"),
                F.col(VALID_FROM).alias("_t_from"),
                *[F.col(c).alias(f"_t_{c}") for c in compare],
            )
        )
        staged = rows.join(current, on=list(keys), how="left")
        same = [F.col(c).eqNullSafe(F.col(f"_t_{c}")) for c in compare]
        unchanged = F.lit(True)
        for condition in same:
            unchanged = unchanged & condition
        exists = F.col("_t_exists").isNotNull()
        effective = F.greatest(
            F.coalesce(F.col(VALID_FROM), F.lit(changed_at).cast("timestamp")), F.col("_t_from")
        )
        staged = staged.where(~exists | ~unchanged).withColumn("_effective", effective)
        merge_keys = [F.col(k).alias(f"_mk_{k}") for k in keys]
        null_keys = [F.lit(None).cast(spec.schema[k].dataType).alias(f"_mk_{k}") for k in keys]
        columns = spec.schema.fieldNames()
        new_keys = staged.where(~exists).select(*columns, *merge_keys, "_effective")
        to_close = staged.where(exists).select(*columns, *merge_keys, "_effective")
        new_versions = staged.where(exists).select(
            *[F.col("_effective").alias(c) if c == VALID_FROM else F.col(c) for c in columns],
            *null_keys,
            "_effective",
        )
        source = new_keys.unionByName(to_close).unionByName(new_versions)
        cond = " AND ".join(f"t.`{k}` = s.`_mk_{k}`" for k in keys) + f" AND t.`{IS_CURRENT}`"
        changed = " OR ".join(f"NOT (t.`{c}` <=> s.`{c}`)" for c in compare) or "false"
        close: dict[str, str | Column] = {VALID_TO: "s._effective", IS_CURRENT: "false"}
        close.update({c: f"s.`{c}`" for c in touch})
        self._begin(name)
        before = self.version(name)
        merger = (
            self._delta(name)
            .alias("t")
            .merge(source.alias("s"), cond)
            .whenMatchedUpdate(condition=changed, set=close)
            .whenNotMatchedInsert(values={c: f"s.`{c}`" for c in columns})
        )
        try:
            merger.execute()
        except Exception as exc:
            raise LakeError(f"versioned MERGE into '{name}' failed: {exc}") from exc
        return self._merge_counts(name, before)

    def missing_columns(self, name: str) -> list[str]:
        """Catalog-schema columns the existing table ``name`` lacks (none when it is absent)."""
        if not self.exists(name):
            return []
        have = set(self._delta(name).toDF().columns)
        return [c for c in self.spec(name).schema.fieldNames() if c not in have]

    def require_schema(
        self, name: str, fix: str = "re-ingest into a fresh lake (a new lake.root)"
    ) -> None:
        """Fail, naming the table and ``fix``, when ``name`` was created by an older schema."""
        missing = self.missing_columns(name)
        if missing:
            raise SchemaError(
                f"table '{name}' at {self.location(name)} lacks column(s) {', '.join(missing)} "
                f"(created by an older ShopperLake): {fix}"
            )

    def restore(self, name: str, version: int) -> None:
        self._delta(name).restoreToVersion(version)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing across tables: on error, every table written inside the block goes
        back to the version it had when the block started (Delta RESTORE)."""
        self._txn.append({})
        try:
            yield
        except BaseException:
            touched = self._txn.pop()
            for name, before in touched.items():
                try:
                    self._rollback(name, before)
                except Exception:  # keep restoring the others; report the original error
                    log.exception("could not restore %s to version %s", name, before)
            raise
        else:
            done = self._txn.pop()
            if self._txn:  # nested: the outer block owns the rollback
                for name, before in done.items():
                    self._txn[-1].setdefault(name, before)

    def written(self) -> dict[str, int | None]:
        """Tables written so far inside the innermost open transaction -> their version when
        it started (None: created inside it)."""
        return dict(self._txn[-1]) if self._txn else {}

    # -- maintenance ---------------------------------------------------------------------------
    def snapshot_files(self, name: str) -> tuple[int, int]:
        """(data files, bytes) of the table's latest version."""
        row = self._delta(name).detail().select("numFiles", "sizeInBytes").first()
        return (0, 0) if row is None else (int(row["numFiles"]), int(row["sizeInBytes"]))

    def stored_files(self, name: str) -> tuple[int, int]:
        """(Parquet data files, bytes) under the table's location, every version's (what
        VACUUM removes); listed through Hadoop, so any lake URI works."""
        jvm = self.spark.sparkContext._jvm
        assert jvm is not None
        path = jvm.org.apache.hadoop.fs.Path(self.location(name))
        fs = path.getFileSystem(self.spark.sparkContext._jsc.hadoopConfiguration())
        if not fs.exists(path):
            return 0, 0
        files = size = 0
        listing = fs.listFiles(path, True)
        while listing.hasNext():
            status = listing.next()
            text = status.getPath().toString()
            if text.endswith(".parquet") and "/_delta_log/" not in text:
                files += 1
                size += int(status.getLen())
        return files, size

    def delete_where(self, name: str, condition: str) -> int:
        """Delete the rows matching the SQL ``condition``; the rows deleted (commit metrics)."""
        self._begin(name)
        before = self.version(name)
        self._delta(name).delete(condition)
        self._record_output(name)
        if self.version(name) == before:
            return 0
        return int(self.last_commit_metrics(name).get("numDeletedRows", 0))

    def changed_dates_since(self, name: str, version: int) -> set[str | None] | None:
        """The date partitions (``YYYY-MM-DD``) whose data changed after ``version``: the
        partition value of every add or remove action with ``dataChange`` in the Delta log's
        later commits (compaction rewrites files without changing data and is ignored). An
        element None: a change outside a date partition (unpartitioned table, or no date
        partition column). Returns None when a commit's log file is gone (cleaned up after a
        checkpoint): the changes cannot be told."""
        current = self.version(name)
        if current is None or current < version:
            return None
        spec = self.spec(name)
        dates = {f.name for f in spec.schema.fields if f.dataType.typeName() == "date"}
        part = next((c for c in spec.partition_by if c in dates), None)
        if current == version:
            return set()
        log = f"{spec.location}/_delta_log"
        paths = [f"{log}/{v:020d}.json" for v in range(version + 1, current + 1)]
        try:
            lines = [r[0] for r in self.spark.read.text(paths).collect()]
        except AnalysisException:
            return None
        changed: set[str | None] = set()
        for line in lines:
            action = json.loads(line)
            for kind in ("add", "remove"):
                file = action.get(kind)
                if file is not None and file.get("dataChange", True):
                    changed.add((file.get("partitionValues") or {}).get(part) if part else None)
        return changed

    def partition_files(self, name: str) -> dict[tuple[tuple[str, str], ...], int]:
        """Data files of the latest version per partition (its ``(column, value)`` pairs, from
        the Hive-style folders Delta writes), read from the log, not the data."""
        spec = self.spec(name)
        counts: dict[tuple[tuple[str, str], ...], int] = {}
        for uri in self.spark.read.format("delta").load(spec.location).inputFiles():
            folders = urlparse(uri).path.split("/")[:-1]
            values = dict(unquote(f).split("=", 1) for f in folders if "=" in f)
            key = tuple((c, values[c]) for c in spec.partition_by if c in values)
            counts[key] = counts.get(key, 0) + 1
        return counts

    def optimize(self, name: str, zorder_by: Sequence[str] = ()) -> dict[str, int]:
        """Compact the partitions that hold more than one file (OPTIMIZE), Z-ordered by
        ``zorder_by`` when given; files added and removed. A partition already in one file is
        left alone (Delta's Z-order would rewrite it every time)."""
        crowded = [key for key, n in self.partition_files(name).items() if n > 1]
        if not crowded:
            return {"files_added": 0, "files_removed": 0}
        self._begin(name)
        builder = self._delta(name).optimize()
        if any(crowded):  # partitioned: only the crowded partitions
            builder = builder.where(" OR ".join(
                "(" + " AND ".join(
                    f"{c} IS NULL" if v == HIVE_NULL else f"{c} = {sql_literal(v)}"
                    for c, v in key
                ) + ")"
                for key in crowded
            ))  # fmt: skip
        result = builder.executeZOrderBy(*zorder_by) if zorder_by else builder.executeCompaction()
        self._record_output(name)
        row = result.select("metrics.numFilesAdded", "metrics.numFilesRemoved").first()
        if row is None:
            return {"files_added": 0, "files_removed": 0}
        return {"files_added": int(row[0]), "files_removed": int(row[1])}

    def vacuum(self, name: str, retention_hours: float, force: bool = False) -> None:
        """Delete files no version younger than ``retention_hours`` needs. Below Delta's safe
        minimum (168 h) only with ``force`` (time travel and slow readers past that point
        break)."""
        self._check_declared(name, "writes")
        key = "spark.databricks.delta.retentionDurationCheck.enabled"
        previous = self.spark.conf.get(key, "true") or "true"
        if force:
            self.spark.conf.set(key, "false")
        try:
            self._delta(name).vacuum(retention_hours)
        finally:
            self.spark.conf.set(key, previous)

    # -- internals -----------------------------------------------------------------------------
    def _delta(self, name: str) -> DeltaTable:
        spec = self.spec(name)
        try:
            return DeltaTable.forPath(self.spark, spec.location)
        except AnalysisException as exc:
            raise LakeError(f"table '{name}' does not exist at {spec.location}") from exc

    def _merge_counts(self, name: str, before: int | None) -> dict[str, int]:
        """Rows the MERGE just run on ``name`` inserted / updated, from its commit's metrics.

        A MERGE with nothing to change may commit nothing (the last commit is then someone
        else's): that is a count of 0 for each. A commit without the metrics is an error,
        never a silent 0."""
        if self.version(name) == before:
            self._record_output(name)
            return {"inserted": 0, "updated": 0, "source_rows": 0}
        metrics = self.last_commit_metrics(name)
        self._record_output(name)
        wanted = {
            "inserted": "numTargetRowsInserted",
            "updated": "numTargetRowsUpdated",
            "source_rows": "numSourceRows",
        }
        absent = [metric for metric in wanted.values() if metric not in metrics]
        if absent:
            raise LakeError(
                f"the MERGE commit of '{name}' has no {', '.join(absent)} metric(s): cannot "
                "count its rows (is spark.databricks.delta.history.metricsEnabled off?)"
            )
        return {key: int(metrics[metric]) for key, metric in wanted.items()}

    def _check_declared(self, name: str, what: str) -> None:
        """A job touches only the tables its declaration names (``meta.*`` is everyone's)."""
        if self.declared is None or name.startswith("meta."):
            return
        job, reads, writes = self.declared
        allowed = writes if what == "writes" else reads | writes
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in allowed):
            raise LakeError(
                f"job '{job}' {what} {name} without declaring it: add it to the job's "
                f"declared {what} (shopperlake.jobs lists them)"
            )

    def _begin(self, name: str) -> None:
        self._check_declared(name, "writes")
        if self._txn and name not in self._txn[-1]:
            self._txn[-1][name] = self.version(name)

    def _rollback(self, name: str, before: int | None) -> None:
        now = self.version(name)
        if now is None or now == before:
            return
        target = 0 if before is None else before
        log.warning("rolling back %s from version %s to %s", name, now, target)
        if before is None:
            # The table was created inside the failed job: empty it (version 0 is the create).
            self.restore(name, 0)
        else:
            self.restore(name, target)

    def _record_output(self, name: str) -> None:
        if self.lineage is not None:
            self.lineage.record_output(name, self.version(name))

    def _check_writable(self, spec: TableSpec) -> None:
        parsed = urlparse(spec.location)
        if parsed.scheme and parsed.scheme != "file":
            return
        path = Path(parsed.path if parsed.scheme == "file" else spec.location)
        probe = path
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
            raise LakeError(f"lake location {spec.location} is not writable ({probe})")

    def _write(self, name: str, df: DataFrame, mode: str, replace_where: str | None = None) -> int:
        spec = self.spec(name)
        self.create(name)
        self._begin(name)
        writer = conform(df, spec.schema).write.format("delta").mode(mode)
        if replace_where is not None:
            writer = writer.option("replaceWhere", replace_where)
        try:
            writer.save(spec.location)
        except Exception as exc:
            raise LakeError(f"write to '{name}' failed: {exc}") from exc
        self._record_output(name)
        version = self.version(name)
        assert version is not None
        return version


def conform(df: DataFrame, schema: StructType) -> DataFrame:
    """Select ``schema``'s columns in order, cast to its types; missing columns are an error."""
    missing = [f.name for f in schema.fields if f.name not in df.columns]
    if missing:
        raise SchemaError(f"missing column(s) {', '.join(missing)}; have {', '.join(df.columns)}")
    cols: list[Column] = [F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields]
    return df.select(*cols)
