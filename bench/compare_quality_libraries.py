"""The quality gates against Great Expectations and Soda Core on the same Delta table.

One gold.churn_scores partition of N users (default 1,000,000) with planted faults: 2 null
scores, 3 duplicated user ids, 1 score of 1.5. The same three checks (not_null, unique,
range) run through ShopperLake's gates (``shopperlake.core.quality``), Great Expectations
1.x (Spark datasource) and Soda Core (``soda-core-spark-df``); the script prints what each
found and the median seconds of ``--repeats`` interleaved rounds after one warm-up run each,
all in one process on one Spark session.

The two libraries are not in the stack: run this from a venv layered on ``.venv``::

    python3.11 -m venv /tmp/qlibs
    site=/tmp/qlibs/lib/python3.11/site-packages
    echo "$PWD/.venv/lib/python3.11/site-packages" > $site/stack.pth
    /tmp/qlibs/bin/pip install -c constraints.txt great_expectations==1.24.1 \
        soda-core-spark-df==3.5.6
    PYTHONPATH=lib /tmp/qlibs/bin/python bench/compare_quality_libraries.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shopperlake.core.config import load_config
from shopperlake.core.lake import Lake, load_catalog
from shopperlake.core.quality import check_table, parse_checks
from shopperlake.core.session import build_session

DAY = dt.date(2024, 4, 29)


def planted(spark: Any, n: int) -> DataFrame:
    ids = spark.range(n).select(
        F.format_string("u%08d", "id").alias("user_id"),
        (F.col("id") % 1000 / 1000.0).alias("score"),
        F.col("id"),
    )
    faults = (
        F.when(F.col("id") < 2, F.lit(None).cast("double"))  # 2 null scores
        .when(F.col("id") == 2, F.lit(1.5))  # 1 out of range
        .otherwise(F.col("score"))
    )
    dup = F.when(F.col("id").between(10, 12), F.format_string("u%08d", F.col("id") + 10))
    return ids.select(
        F.coalesce(dup, F.col("user_id")).alias("user_id"),
        faults.alias("score"),
        F.lit("high").alias("risk_band"),
        F.array().cast("array<string>").alias("top_reasons"),
        F.lit("v1").alias("model_version"),
        F.lit("in_population").alias("population"),
        F.lit(DAY).alias("as_of_date"),
    )


def timed(fn: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    seconds, result = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - began)
    return result, statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    spark = build_session(load_config("local"), "quality-libraries")
    lake = Lake(spark, tempfile.mkdtemp(prefix="qlibs-"), load_catalog())
    lake.overwrite_where("gold.churn_scores", planted(spark, args.rows), {"as_of_date": DAY})
    df = lake.read("gold.churn_scores")
    checks = parse_checks(
        "gold.churn_scores",
        [
            {"check": "not_null", "columns": ["score"]},
            {"check": "unique", "columns": ["user_id"]},
            {"check": "range", "column": "score", "min": 0, "max": 1},
        ],
    )

    def ours() -> list[str]:
        return [
            f"{r.check}: {r.status} ({r.observed})"
            for r in check_table(lake, "gold.churn_scores", checks, None)
        ]

    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_spark(name="spark")
        .add_dataframe_asset(name="scores")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": df})
    )
    suite = gx.ExpectationSuite(name="scores")
    suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column="score"))
    suite.add_expectation(gx.expectations.ExpectColumnValuesToBeUnique(column="user_id"))
    suite.add_expectation(
        gx.expectations.ExpectColumnValuesToBeBetween(column="score", min_value=0, max_value=1)
    )

    def great_expectations() -> list[str]:
        result = batch.validate(suite)
        return [
            f"{r.expectation_config.type}: {'pass' if r.success else 'fail'} "
            f"(unexpected {r.result.get('unexpected_count')})"
            for r in result.results
        ]

    from soda.scan import Scan

    df.createOrReplaceTempView("scores")
    sodacl = """
checks for scores:
  - missing_count(score) = 0
  - duplicate_count(user_id) = 0
  - invalid_count(score) = 0:
      valid min: 0
      valid max: 1
"""

    def soda() -> list[str]:
        scan = Scan()
        scan.set_scan_definition_name("scores")
        scan.set_data_source_name("spark_df")
        scan.add_spark_session(spark, data_source_name="spark_df")
        scan.add_sodacl_yaml_str(sodacl)
        scan.execute()
        out = []
        for c in scan._checks:
            value = c.get_cloud_diagnostics_dict().get("value")
            out.append(f"{c.name}: {c.outcome.value if c.outcome else None} ({value})")
        return out

    print(f"{args.rows:,} rows; planted: 2 null scores, 3 duplicated user ids, 1 score 1.5")
    tools = (("shopperlake gates", ours), ("great_expectations", great_expectations),
             ("soda-core", soda))  # fmt: skip
    for _, fn in tools:  # one untimed run each: the JVM's JIT warms up on the first scans
        fn()
    # rounds interleave the tools, so load from the shared machine falls on all of them
    seconds: dict[str, list[float]] = {name: [] for name, _ in tools}
    found: dict[str, Any] = {}
    for _ in range(args.repeats):
        for name, fn in tools:
            found[name], took = timed(fn, 1)
            seconds[name].append(took)
    for name, _ in tools:
        print(f"{name:<20} median {statistics.median(seconds[name]):6.2f} s of {args.repeats}")
        for line in found[name]:
            print(f"    {line}")
    spark.stop()


if __name__ == "__main__":
    main()
