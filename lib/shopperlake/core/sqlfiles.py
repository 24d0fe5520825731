"""Spark SQL kept as ``.sql`` files under ``sql/``: load them, run them with bound values, and
register the analyst views of ``sql/views/``.

Values are bound with Spark's named parameters (``:as_of``) and DataFrames are passed as
``{name}`` references (``spark.sql(text, args=..., name=df)``): nothing is formatted into SQL
text by hand.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from shopperlake.core.config import packaged
from shopperlake.core.errors import ConfigError
from shopperlake.core.lake import Lake

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z][a-z0-9_]*(/[a-z][a-z0-9_]*)*$")
# Logical view name -> table whose latest Delta snapshot it is (what sql/views/*.sql read).
VIEW_TABLES = {
    "user_profiles": "gold.user_profiles",
    "user_segments": "gold.user_segments",
    "segment_summary": "gold.segment_summary",
}


def read_sql(name: str) -> str:
    """Text of ``sql/<name>.sql`` (``name`` like ``profile_grain`` or ``views/x``), shipped in
    the package as ``shopperlake/_sql``."""
    if not _NAME.match(name):
        raise ConfigError(f"invalid SQL file name '{name}'")
    bundled = packaged("_sql", f"{name}.sql")
    if not bundled.is_file():
        raise ConfigError(f"SQL file not found: sql/{name}.sql (not in the package)")
    return bundled.read_text(encoding="utf-8")


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
    folder = packaged("_sql", "views")
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".sql"))


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
