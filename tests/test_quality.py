"""Quality gates: each kind of check on hand-built rows (the expected counts are counted by
hand below), scoped to the partitions a write changed, and a real job rolled back by an
`error` gate and carried on past a `warn` gate."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from shopperlake.core.errors import ConfigError
from shopperlake.core.lake import Lake
from shopperlake.core.quality import check_table, configured, parse_checks
from shopperlake.core.schemas import SCHEMAS
from tests.test_ingest import CUSTOM_LINES, last_run, run_ingest, write_custom

D = dt.date


def scores(spark: SparkSession, day: dt.date, rows: list[tuple[str | None, float | None]]):  # type: ignore[no-untyped-def]
    return spark.createDataFrame(
        [(u, s, "high", [], "v1", "all", day) for u, s in rows], SCHEMAS["scores"]
    )


def by_check(results):  # type: ignore[no-untyped-def]
    return {r.check: r for r in results}


CHECKS = parse_checks(
    "gold.churn_scores",
    [
        {"check": "not_null", "columns": ["user_id", "score"]},
        {"check": "unique", "columns": ["user_id"]},
        {"check": "range", "column": "score", "min": 0, "max": 1},
        {"check": "row_count", "min": 1},
        {"check": "row_count_change", "min_ratio": 0.5, "max_ratio": 2.0, "level": "warn"},
    ],
)


def test_checks_see_only_the_partitions_the_write_changed(spark: SparkSession, lake: Lake) -> None:
    # Day 1: ten clean users plus a duplicate of u0 (a problem of day 1, not of day 2's run).
    day1 = [(f"u{i}", i / 10) for i in range(10)] + [("u0", 0.5)]
    lake.overwrite_where(
        "gold.churn_scores", scores(spark, D(2024, 1, 1), day1), {"as_of_date": D(2024, 1, 1)}
    )
    before = lake.version("gold.churn_scores")
    assert before is not None
    # Day 2: four rows - u1 twice, one null score, one score of 1.5.
    day2 = [("u1", 0.2), ("u1", 0.3), ("u2", None), ("u3", 1.5)]
    lake.overwrite_where(
        "gold.churn_scores", scores(spark, D(2024, 1, 2), day2), {"as_of_date": D(2024, 1, 2)}
    )
    got = by_check(check_table(lake, "gold.churn_scores", CHECKS, before, D(2024, 1, 9)))

    assert {r.scope for r in got.values()} == {"as_of_date in 2024-01-02"}
    assert got["not_null(user_id, score)"].status == "fail"
    assert got["not_null(user_id, score)"].observed == "1 null score"
    assert got["unique(user_id)"].observed == "1 duplicated key(s) over 2 rows"
    assert got["range(score)"].status == "fail"
    assert got["range(score)"].observed.startswith("1 row(s) out of range")
    assert got["row_count"].status == "pass" and got["row_count"].observed == "4 rows"
    # 4 rows against day 1's 11: x0.36, below the band's 0.5
    change = got["row_count_change"]
    assert change.status == "fail" and change.level == "warn"
    assert change.observed == "4 rows in as_of_date 2024-01-02 vs 11 in 2024-01-01 (x0.36)"

    # As if one run had created the table with both days: keys are unique per date, so u0
    # twice on day 1 and u1 twice on day 2 are two duplicated keys (u1 on both days is not).
    first = by_check(check_table(lake, "gold.churn_scores", CHECKS, None, None))
    assert first["unique(user_id)"].observed == "2 duplicated key(s) over 4 rows"
    clean = [(f"u{i}", i / 10) for i in range(8)]
    lake.overwrite_where(
        "gold.churn_scores", scores(spark, D(2024, 1, 3), clean), {"as_of_date": D(2024, 1, 3)}
    )
    v = lake.version("gold.churn_scores")
    assert v is not None
    third = by_check(check_table(lake, "gold.churn_scores", CHECKS, v - 1, None))
    assert [r.status for r in third.values()] == ["pass"] * 5
    assert (
        third["row_count_change"].observed
        == "8 rows in as_of_date 2024-01-03 vs 4 in 2024-01-02 (x2.00)"
    )


def test_freshness_is_judged_per_snapshot_date_or_against_the_as_of(
    spark: SparkSession, lake: Lake
) -> None:
    fields = SCHEMAS["user_profiles"].fieldNames()

    def profile(user: str, last: dt.datetime, day: dt.date) -> dict[str, object]:
        return {**dict.fromkeys(fields), "user_id": user, "last_event_ts": last, "as_of_date": day}

    rows = [
        profile("a", dt.datetime(2024, 1, 9, 12), D(2024, 1, 10)),  # 1 day old
        profile("b", dt.datetime(2024, 1, 2), D(2024, 1, 10)),
        profile("a", dt.datetime(2024, 1, 3), D(2024, 1, 20)),  # newest 17 days before
    ]
    df = spark.createDataFrame(rows, SCHEMAS["user_profiles"])
    lake.append("gold.user_profiles", df)
    check = parse_checks(
        "p", [{"check": "freshness", "column": "last_event_ts", "max_age_days": 7}]
    )
    (r,) = check_table(lake, "gold.user_profiles", check, None, D(2024, 1, 10))
    assert (r.status, r.observed) == (
        "fail",
        "newest last_event_ts 17 days before as_of_date 2024-01-20",
    )
    # an unpartitioned table against the run's --as-of: bronze.items' newest valid_from
    items = parse_checks("i", [{"check": "freshness", "column": "valid_from", "max_age_days": 3}])
    item_fields = SCHEMAS["items"].fieldNames()
    row = {**dict.fromkeys(item_fields), "item_id": "i1", "valid_from": dt.datetime(2024, 1, 5),
           "is_current": True, "source": "s", "updated_run_id": "r"}  # fmt: skip
    lake.append("bronze.items", spark.createDataFrame([row], SCHEMAS["items"]))
    (ok,) = check_table(lake, "bronze.items", items, None, D(2024, 1, 8))
    (late,) = check_table(lake, "bronze.items", items, None, D(2024, 1, 9))
    (skipped,) = check_table(lake, "bronze.items", items, None, None)
    assert (ok.status, ok.observed) == ("pass", "newest 2024-01-05 (3 days before 2024-01-08)")
    assert (late.status, skipped.status) == ("fail", "skipped")


def test_bad_gate_config_is_named() -> None:
    with pytest.raises(ConfigError, match=r"quality.tables.gold.x\[0\]: unknown check 'nonnull'"):
        parse_checks("gold.x", [{"check": "nonnull", "columns": ["a"]}])
    with pytest.raises(ConfigError, match="level must be error or warn, not 'fatal'"):
        parse_checks("t", [{"check": "unique", "columns": ["a"], "level": "fatal"}])
    with pytest.raises(ConfigError, match="range needs min and/or max"):
        parse_checks("t", [{"check": "range", "column": "a"}])
    with pytest.raises(ConfigError, match="unique does not take column"):
        parse_checks("t", [{"check": "unique", "columns": ["a"], "column": "a"}])
    with pytest.raises(ConfigError, match="unknown table.s. gold.nope"):
        configured({"tables": {"gold.nope": []}}, ["gold.churn_scores"])
    assert configured({"enabled": False, "tables": {"gold.nope": []}}, []) == {}


def test_error_gate_rolls_the_job_back_and_warn_gate_lets_it_finish(
    spark: SparkSession,
    lake: Lake,
    lake_root: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="shopperlake.progress")
    # Day 1: one event priced 10.0; a warn gate asks for prices <= 5.
    raw = write_custom(tmp_path, [CUSTOM_LINES[0][0]])
    warn = "quality.tables.bronze.events=[{check: range, column: price, max: 5, level: warn}]"
    args = ("--source", "custom", "--input", str(raw), "--as-of", "2024-06-30")
    assert run_ingest(lake_root, *args, "--set", warn) == 0
    ok = last_run(lake)
    assert ok.status == "success" and ok.metrics["quality.warnings"] == 1.0
    # the job logged its stages: the events file (1 line read), then the gates (1 check)
    stages = [r.getMessage() for r in caplog.records if r.name == "shopperlake.progress"]
    assert stages[0].startswith(f"ingest stage 1 events from {raw}") and stages[0].endswith(
        " s, 1 rows"
    )
    assert stages[-1].startswith("ingest stage") and "quality gates done in" in stages[-1]
    assert stages[-1].endswith(" s, 1 rows")
    checks = lake.read("meta.quality_checks").where(F.col("run_id") == ok.run_id).collect()
    assert [(c.table_name, c.check, c.level, c.status) for c in checks] == [
        ("bronze.events", "range(price)", "warn", "fail")
    ]
    assert checks[0].observed == "1 row(s) out of range (min 10.0, max 10.0)"
    before = lake.read("bronze.events").collect()
    version = lake.version("bronze.events")
    assert version is not None

    # Day 2 adds an order priced 0 and an error gate asks for prices >= 1: the job fails and
    # bronze.events is restored.
    write_custom(tmp_path, [CUSTOM_LINES[1][0]], "day2.csv")
    error = "quality.tables.bronze.events=[{check: range, column: price, min: 1, level: error}]"
    assert run_ingest(lake_root, *args, "--set", error) == 2
    err = capsys.readouterr().err
    assert "quality gate failed: bronze.events range(price): 1 row(s) out of range" in err
    assertDataFrameEqual(lake.read("bronze.events").collect(), before)
    ops = [r.operation for r in lake.history("bronze.events").orderBy("version").collect()]
    assert ops[-2:] == ["MERGE", "RESTORE"]
    failed = last_run(lake)
    assert failed.status == "failed" and "quality gate failed" in failed.error
    row = lake.read("meta.quality_checks").where(F.col("run_id") == failed.run_id).collect()
    assert [(c.check, c.level, c.status) for c in row] == [("range(price)", "error", "fail")]
