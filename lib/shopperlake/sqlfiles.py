"""Spark SQL kept as ``.sql`` files under ``sql/``: load them, run them with bound values, and
register the analyst views of ``sql/views/``.

Values are bound with Spark's named parameters (``:as_of``) and DataFrames are passed as
``{name}`` references (``spark.sql(text, args=..., name=df)``): nothing is formatted into SQL
text by hand.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from shopperlake.errors import ConfigError
from shopperlake.lake import Lake

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z][a-z0-9_]*(/[a-z][a-z0-9_]*)*$")
# Logical view name -> table whose latest Delta snapshot it is (what sql/views/*.sql read).
VIEW_TABLES = {
    "user_profiles": "gold.user_profiles",
    "user_segments": "gold.user_segments",
    "segment_summary": "gold.segment_summary",
}


def sql_dirs() -> list[Path]:
    """Where ``sql/`` may be, in order: $SHOPPERLAKE_SQL_DIR; the repo of this checkout; the
    repo next to the package zip that submit.sh ships (``<repo>/.sl-build/shopperlake.zip``);
    the working directory. (Inside a zip without a repo, ``shopperlake/_sql`` is read.)"""
    env = os.environ.get("SHOPPERLAKE_SQL_DIR")
    if env:
        return [Path(env)]
    here = Path(__file__).resolve()
    found = [here.parents[2] / "sql"]
    archive = next((p for p in here.parents if p.is_file()), None)
    if archive is not None:
        found += [archive.parent.parent / "sql", archive.parent / "sql"]
    found.append(Path.cwd() / "sql")
    return found


def sql_dir() -> Path:
    """The first existing candidate of :func:`sql_dirs` (the first one when none exists)."""
    dirs = sql_dirs()
    return next((d for d in dirs if (d / "profile_grain.sql").is_file()), dirs[0])


def read_sql(name: str) -> str:
    """Text of ``sql/<name>.sql`` (``name`` like ``profile_grain`` or ``views/x``)."""
    if not _NAME.match(name):
        raise ConfigError(f"invalid SQL file name '{name}'")
    path = sql_dir() / f"{name}.sql"
    if path.is_file():
        return path.read_text(encoding="utf-8")
    bundled = resources.files("shopperlake").joinpath("_sql", *f"{name}.sql".split("/"))
    if bundled.is_file():
        return bundled.read_text(encoding="utf-8")
    raise ConfigError(f"SQL file not found: sql/{name}.sql (looked in {sql_dir()})")


def run_sql(
    spark: SparkSession,
    name: str,
    args: Mapping[str, Any] | None = None,
    **frames: DataFrame,
) -> DataFrame:
    """Run ``sql/<name>.sql`` with named parameters ``args`` and DataFrames ``{frames}``."""
    text = read_sql(name)
    return spark.sql(text, args=dict(args) if args else None, **frames)


def view_names() -> list[str]:
    """The analyst views shipped in ``sql/views/`` (file stems, sorted)."""
    folder = sql_dir() / "views"
    if folder.is_dir():
        return sorted(p.stem for p in folder.glob("*.sql"))
    bundled = resources.files("shopperlake").joinpath("_sql", "views")
    if bundled.is_dir():
        return sorted(p.name[:-4] for p in bundled.iterdir() if p.name.endswith(".sql"))
    return []


def register_views(spark: SparkSession, tables: Mapping[str, DataFrame]) -> list[str]:
    """Register ``tables`` (logical name -> DataFrame, e.g. ``user_profiles``) and every view of
    ``sql/views/`` whose inputs are present, as session temp views. Returns the views made."""
    for name, df in tables.items():
        df.createOrReplaceTempView(name)
    made = []
    for view in view_names():
        text = read_sql(f"views/{view}")
        needed = {t for t in VIEW_TABLES if re.search(rf"\b{t}\b", text)}
        if not needed <= set(tables):
            log.info("view %s skipped: needs %s", view, ", ".join(sorted(needed - set(tables))))
            continue
        spark.sql(text)
        made.append(view)
    return made


def register_lake_views(lake: Lake) -> list[str]:
    """Temp views of the gold tables that exist (latest Delta version) and the analyst views
    built on them, in ``lake.spark``'s session. Returns every view name registered."""
    tables = {view: lake.read(table) for view, table in VIEW_TABLES.items() if lake.exists(table)}
    return [*tables, *register_views(lake.spark, tables)]
