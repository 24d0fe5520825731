"""``maintain`` on a real Delta lake: expiry, compaction with Z-order and VACUUM, checked
against hand-built rows and the Parquet files on disk (listed here, not by the job)."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from shopperlake.core.lake import Lake
from shopperlake.ops.maintain import main as maintain
from tests.conftest import job_args

TABLE = "gold.recommendations"
DAYS = [dt.date(2024, 1, 31), dt.date(2024, 2, 29), dt.date(2024, 3, 31)]
BATCHES = 4  # appends per day, one file each
SCHEMA = (
    "user_id string, as_of_date date, rank int, item_id string, score double, source string, "
    "model_version string"
)


def rows(day: dt.date, batch: int) -> list[tuple]:
    return [(f"u{batch}-{i}", day, i + 1, f"i{i}", 1.0 / (i + 1), "popularity", "v1")
            for i in range(3)]  # fmt: skip


def fill(spark: SparkSession, lake: Lake) -> None:
    """3 days x 4 appends of 3 rows: 12 one-file commits."""
    for day in DAYS:
        for batch in range(BATCHES):
            lake.append(TABLE, spark.createDataFrame(rows(day, batch), SCHEMA).coalesce(1))


def expected(spark: SparkSession, days: list[dt.date]) -> DataFrame:
    return spark.createDataFrame(
        [r for day in days for b in range(BATCHES) for r in rows(day, b)], SCHEMA
    )


def parquet_files(lake: Lake) -> int:
    """Data files under the table's folder (every version's), counted on disk."""
    top = Path(lake.location(TABLE))
    return sum(
        1
        for folder, _, names in os.walk(top)
        if "_delta_log" not in Path(folder).parts
        for name in names
        if name.endswith(".parquet")
    )


def latest_files(spark: SparkSession, lake: Lake) -> int:
    return int(DeltaTable.forPath(spark, lake.location(TABLE)).detail().first()["numFiles"])


def run_metrics(lake: Lake) -> dict[str, float]:
    row = lake.read("meta.runs").where("job = 'maintain'").orderBy(F.desc("started_at")).first()
    assert row is not None
    return {k.split(".", 2)[-1]: v for k, v in row.metrics.items() if k.startswith(TABLE)}


def test_expiry_compaction_and_forced_vacuum(
    spark: SparkSession, lake: Lake, lake_root: str
) -> None:
    fill(spark, lake)
    assert (latest_files(spark, lake), parquet_files(lake)) == (12, 12)
    code = maintain(job_args(
        lake_root, "--as-of", "2024-03-31", "--tables", TABLE,
        "--set", "maintenance.expire_after_days={gold.recommendations: 30}",
        "--retention-hours", "0", "--force",
    ), spark)  # fmt: skip
    assert code == 0
    # 30 days before 2024-03-31 is 2024-03-01: January and February go, March stays whole.
    assertDataFrameEqual(lake.read(TABLE), expected(spark, [DAYS[2]]))
    # March's 4 files became 1; VACUUM with 0 h removed every other file from disk.
    assert (latest_files(spark, lake), parquet_files(lake)) == (1, 1)
    optimize = lake.history(TABLE).where("operation = 'OPTIMIZE'").first()
    assert optimize is not None
    assert json.loads(optimize.operationParameters["zOrderBy"]) == ["user_id"]
    m = run_metrics(lake)
    assert m["expired_rows"] == 2 * BATCHES * 3
    assert (m["latest_files_before"], m["latest_files_after"]) == (12, 1)
    assert (m["stored_files_before"], m["stored_files_after"]) == (12, 1)


def test_safe_retention_by_default_and_a_rerun_changes_nothing(
    spark: SparkSession, lake: Lake, lake_root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(spark, lake)
    version = lake.version(TABLE)
    code = maintain(job_args(lake_root, "--tables", TABLE, "--retention-hours", "1"), spark)
    assert code != 0
    err = capsys.readouterr().err
    assert "VACUUM retention 1 h is below Delta's safe minimum of 168 h" in err
    assert "--force" in err
    assert lake.version(TABLE) == version and parquet_files(lake) == 12
    # Defaults: 168 h, no expiry. Each day's 4 files become 1; the 12 old files stay on disk
    # (younger than the retention), so 12 + 3 are stored.
    for _ in range(2):
        assert maintain(job_args(lake_root, "--tables", TABLE), spark) == 0
        assertDataFrameEqual(lake.read(TABLE), expected(spark, DAYS))
        assert (latest_files(spark, lake), parquet_files(lake)) == (3, 15)
    m = run_metrics(lake)  # the second run: nothing left to compact
    assert (m["files_added"], m["files_removed"], m["expired_rows"]) == (0, 0, 0)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("maintenance.expire_after_days={bronze.users: 30}",
         "bronze.users, which has no date partition column to expire by"),
        ("maintenance.expire_after_days={gold.nope: 30}",
         "maintenance.expire_after_days: unknown table(s) gold.nope"),
        ("maintenance.expire_after_days={gold.recommendations: 0}",
         "expire_after_days.gold.recommendations must be a whole number of days >= 1"),
    ],
)  # fmt: skip
def test_bad_config_stops_before_anything_is_touched(
    spark: SparkSession, lake: Lake, lake_root: str, capsys: pytest.CaptureFixture[str],
    setting: str, message: str,
) -> None:  # fmt: skip
    lake.append(TABLE, spark.createDataFrame(rows(DAYS[0], 0), SCHEMA).coalesce(1))
    lake.append(TABLE, spark.createDataFrame(rows(DAYS[0], 1), SCHEMA).coalesce(1))
    version = lake.version(TABLE)
    assert maintain(job_args(lake_root, "--set", setting), spark) != 0
    assert message in capsys.readouterr().err
    assert lake.version(TABLE) == version and latest_files(spark, lake) == 2
