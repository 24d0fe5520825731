"""``query --sql "SELECT ..."``: Spark SQL over the lake's gold tables and the analyst views of
``sql/views/`` (``user_profiles_latest``, ``segment_summary_latest``, ...), printed as a table.

The gold tables are registered as temp views under their short names (``user_profiles``,
``user_segments``, ``segment_summary``); ``--list`` prints what is available.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from pyspark.sql import SparkSession

from shopperlake.core.cli import Job, JobContext
from shopperlake.core.errors import InputError
from shopperlake.core.sqlfiles import register_lake_views

log = logging.getLogger(__name__)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sql", default=None, help="a Spark SQL query over the views")
    parser.add_argument("--limit", type=int, default=50, help="rows to print (default 50)")
    parser.add_argument("--list", action="store_true", help="print the available views")


def body(ctx: JobContext) -> int:
    """Register the views, then list them or print the query's first --limit rows."""
    views = register_lake_views(ctx.lake)
    if ctx.args.list:
        print("\n".join(views) if views else "(no gold tables yet)", flush=True)
        return len(views)
    if not ctx.args.sql:
        raise InputError("query needs --sql 'SELECT ...' (or --list)")
    if ctx.args.limit < 1:
        raise InputError(f"--limit must be at least 1, got {ctx.args.limit}")
    try:
        result = ctx.spark.sql(ctx.args.sql)
        result.show(ctx.args.limit, truncate=False)
    except Exception as exc:
        raise InputError(f"query failed: {exc}") from exc
    return 0


QUERY = Job(
    name="query",
    description="Run Spark SQL over the gold tables and analyst views; print the result.",
    add_args=add_args,
    body=body,
    reads=("*",),
    writes=(),
)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return QUERY.main(argv, spark)
