"""Lake I/O against real Delta tables: create, MERGE, replaceWhere, time travel, rollback."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from shopperlake.core.errors import LakeError, SchemaError
from shopperlake.core.lake import Lake, load_catalog, partition_predicate
from shopperlake.core.schemas import EVENTS, ITEMS, QUARANTINE

D = dt.date


def items(spark: SparkSession, rows: list[tuple]) -> object:
    """bronze.items rows (one current version each, valid since the beginning)."""
    return spark.createDataFrame(
        [(i, c, None, p, None, None, None, None, True, "t", "r1") for i, c, p in rows], ITEMS
    )


def test_catalog_resolves_layer_and_name(lake: Lake, lake_root: str) -> None:
    assert lake.location("bronze.events") == f"{Path(lake_root).resolve()}/bronze/events"
    assert lake.spec("bronze.events").partition_by == ("event_date",)
    with pytest.raises(LakeError, match="unknown table 'gold.nope'"):
        lake.location("gold.nope")


def test_location_override_and_uri_root(spark: SparkSession, tmp_path: Path) -> None:
    lake = Lake(spark, "s3a://bucket/lake/", load_catalog(), {"bronze.items": "file:///x/items"})
    assert lake.location("bronze.events") == "s3a://bucket/lake/bronze/events"
    assert lake.location("bronze.items") == "file:///x/items"


def test_merge_upserts_on_keys_and_time_travel(spark: SparkSession, lake: Lake) -> None:
    lake.merge("bronze.items", items(spark, [("a", "x", 1.0), ("b", "x", 2.0)]), ["item_id"])
    v1 = lake.version("bronze.items")
    result = lake.merge(
        "bronze.items", items(spark, [("b", "y", 3.0), ("c", "z", 4.0)]), ["item_id"]
    )
    assert result == {"inserted": 1, "updated": 1, "source_rows": 2}
    expected = items(spark, [("a", "x", 1.0), ("b", "y", 3.0), ("c", "z", 4.0)])
    assertDataFrameEqual(lake.read("bronze.items"), expected)
    # Time travel by version still sees the first state.
    assertDataFrameEqual(
        lake.read("bronze.items", version=v1),
        items(spark, [("a", "x", 1.0), ("b", "x", 2.0)]),
    )


def test_merge_update_when_changed_skips_identical_rows(spark: SparkSession, lake: Lake) -> None:
    rows = items(spark, [("a", "x", 1.0), ("b", "x", 2.0)])
    cols = ["category", "price"]
    lake.merge("bronze.items", rows, ["item_id"], update_when_changed=cols)
    again = lake.merge("bronze.items", rows, ["item_id"], update_when_changed=cols)
    assert again["inserted"] == 0 and again["updated"] == 0
    changed = lake.merge(
        "bronze.items",
        items(spark, [("a", "x", 1.0), ("b", "x", 9.0)]),
        ["item_id"],
        update_when_changed=cols,
    )
    assert changed["updated"] == 1 and changed["inserted"] == 0


def test_insert_only_merge_keeps_existing_rows(spark: SparkSession, lake: Lake) -> None:
    lake.merge("bronze.items", items(spark, [("a", "x", 1.0)]), ["item_id"], update=False)
    out = lake.merge(
        "bronze.items",
        items(spark, [("a", "CHANGED", 5.0), ("b", "x", 2.0)]),
        ["item_id"],
        update=False,
    )
    assert out["inserted"] == 1 and out["updated"] == 0
    assertDataFrameEqual(
        lake.read("bronze.items"), items(spark, [("a", "x", 1.0), ("b", "x", 2.0)])
    )


def test_merge_commit_without_metrics_is_an_error(spark: SparkSession, lake: Lake) -> None:
    """A MERGE that commits nothing counts 0 (above); one that commits without its metrics
    cannot be counted and must not pass as 0 rows."""
    key = "spark.databricks.delta.history.metricsEnabled"
    spark.conf.set(key, "false")
    try:
        with pytest.raises(LakeError, match="MERGE commit of 'bronze.items' has no"):
            lake.merge("bronze.items", items(spark, [("a", "x", 1.0)]), ["item_id"])
    finally:
        spark.conf.unset(key)
    assertDataFrameEqual(lake.read("bronze.items"), items(spark, [("a", "x", 1.0)]))


def quarantine_rows(spark: SparkSession, rows: list[tuple[str, str]]) -> object:
    ts = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return spark.createDataFrame(
        [(qid, "r", "s", None, entity, "raw", "why", ts) for qid, entity in rows], QUARANTINE
    )


def test_overwrite_where_replaces_exactly_one_partition(spark: SparkSession, lake: Lake) -> None:
    lake.append("bronze.quarantine", quarantine_rows(spark, [("1", "events"), ("2", "items")]))
    lake.overwrite_where(
        "bronze.quarantine", quarantine_rows(spark, [("3", "events")]), {"entity": "events"}
    )
    got = lake.read("bronze.quarantine").select("quarantine_id", "entity")
    assertDataFrameEqual(got, spark.createDataFrame([("2", "items"), ("3", "events")], got.schema))
    # Rows outside the predicate are refused, not silently written.
    with pytest.raises(LakeError, match="write to 'bronze.quarantine' failed"):
        lake.overwrite_where(
            "bronze.quarantine", quarantine_rows(spark, [("4", "users")]), {"entity": "events"}
        )


def events(spark: SparkSession, rows: list[tuple[str, dt.date]]) -> object:
    """bronze.events rows: a view of item i1 by u1 at noon of each (event_id, day)."""
    return spark.createDataFrame(
        [
            (e, "u1", None, dt.datetime.combine(d, dt.time(12)), "view", "i1", None, None, None,
             None, None, None, None, None, d, "test", "r1")
            for e, d in rows
        ],
        EVENTS,
    )  # fmt: skip


def test_changed_dates_since_names_each_changed_partition(spark: SparkSession, lake: Lake) -> None:
    name = "bronze.events"
    lake.append(name, events(spark, [("e1", D(2024, 1, 1)), ("e2", D(2024, 1, 2))]))
    first = lake.version(name)
    assert first is not None
    assert lake.changed_dates_since(name, first) == set()
    lake.append(name, events(spark, [("e3", D(2024, 1, 3))]))
    jan1 = {"event_date": D(2024, 1, 1)}
    lake.overwrite_where(name, events(spark, [("e4", D(2024, 1, 1))]), jan1)
    assert lake.changed_dates_since(name, first) == {"2024-01-01", "2024-01-03"}
    before_append = lake.version(name)
    assert before_append is not None
    lake.append(name, events(spark, [("e5", D(2024, 1, 2))]))  # a second file in 2024-01-02
    before_compaction = lake.version(name)
    assert before_compaction is not None
    assert lake.optimize(name)["files_removed"] == 2  # rewrites files, changes no data
    assert lake.version(name) == before_compaction + 1
    assert lake.changed_dates_since(name, before_compaction) == set()
    assert lake.changed_dates_since(name, before_append) == {"2024-01-02"}
    assert lake.changed_dates_since(name, before_compaction + 5) is None  # not written yet
    # an unpartitioned table: a change, but no date to name
    lake.merge("bronze.items", items(spark, [("a", "x", 1.0)]), ["item_id"])
    items_first = lake.version("bronze.items")
    assert items_first is not None
    lake.merge("bronze.items", items(spark, [("b", "x", 2.0)]), ["item_id"])
    assert lake.changed_dates_since("bronze.items", items_first) == {None}


def test_partition_predicate_renders_typed_literals() -> None:
    assert partition_predicate({"as_of_date": D(2024, 1, 31)}) == "as_of_date = DATE'2024-01-31'"
    assert (
        partition_predicate({"d": (D(2024, 1, 1), D(2024, 1, 7)), "s": "o'k"})
        == "d >= DATE'2024-01-01' AND d <= DATE'2024-01-07' AND s = 'o\\'k'"
    )
    with pytest.raises(LakeError, match="invalid column name"):
        partition_predicate({"a; drop": 1})


def test_transaction_restores_every_touched_table(spark: SparkSession, lake: Lake) -> None:
    lake.merge("bronze.items", items(spark, [("a", "x", 1.0)]), ["item_id"])
    before = lake.read("bronze.items").collect()
    with pytest.raises(RuntimeError, match="boom"), lake.transaction():
        lake.merge("bronze.items", items(spark, [("a", "y", 2.0), ("b", "x", 3.0)]), ["item_id"])
        lake.append("bronze.quarantine", quarantine_rows(spark, [("1", "events")]))
        raise RuntimeError("boom")
    assertDataFrameEqual(lake.read("bronze.items"), before)
    assert lake.read("bronze.quarantine").count() == 0  # created inside, emptied again


def test_schema_mismatch_is_a_clear_error(spark: SparkSession, lake: Lake) -> None:
    df = spark.createDataFrame([("a",)], "item_id string")
    with pytest.raises(SchemaError, match="missing column"):
        lake.append("bronze.items", df)


def test_missing_table_read_is_a_clear_error(lake: Lake) -> None:
    with pytest.raises(LakeError, match="table 'bronze.events' does not exist"):
        lake.read("bronze.events")
    assert lake.read("bronze.events", required=False).count() == 0


def test_unwritable_lake_is_a_clear_error(spark: SparkSession, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    lake = Lake(spark, str(blocker / "lake"), load_catalog())
    with pytest.raises(LakeError, match="not writable"):
        lake.create("bronze.items")
