"""History of bronze.users / bronze.items (type-2 MERGE), attributes as of a date, the
recommender catalogue as of a date, and the clear error for a lake of the old schema."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from shopperlake.core.cli import JobContext
from shopperlake.core.config import load_config
from shopperlake.core.lake import Lake, load_catalog
from shopperlake.core.runlog import RunRecorder
from shopperlake.core.schemas import EVENTS, SCHEMAS, USERS
from shopperlake.ingest.job import main as ingest
from shopperlake.profiles.features import attributes_as_of
from shopperlake.rec.job import catalog_frame
from tests.conftest import TEST_OVERRIDES, job_args

UTC = dt.UTC


def ts(month: int, day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2024, month, day, hour, tzinfo=UTC)


USER_ROW = (
    "user_id string, signup_date date, country string, age_band string, "
    "valid_from timestamp, source string, updated_run_id string"
)
HISTORY = (
    "user_id string, country string, age_band string, valid_from timestamp, "
    "valid_to timestamp, is_current boolean, updated_run_id string"
)


def users_batch(spark: SparkSession, run: str, rows: list[tuple[object, ...]]) -> DataFrame:
    """(user_id, country, age_band, valid_from) rows as the ingest hands them to the MERGE."""
    return spark.createDataFrame([(u, None, c, a, f, "test", run) for u, c, a, f in rows], USER_ROW)


def test_merge_versions_keeps_every_version(spark: SparkSession, lake: Lake) -> None:
    compare = ["signup_date", "country", "age_band"]
    first = users_batch(
        spark,
        "r1",
        [
            ("u1", "DE", "25-34", None),
            ("u2", "FR", None, None),
            ("u3", "IT", "35-44", ts(1, 1, 10)),  # the source dates its attributes
            ("u5", "NL", None, ts(3, 1)),
        ],
    )
    got = lake.merge_versions("bronze.users", first, ["user_id"], compare, ts(1, 2))
    assert (got["inserted"], got["updated"]) == (4, 0)

    change = ts(2, 1)  # e.g. ingest --as-of 2024-01-31: the end of that day
    second = users_batch(
        spark,
        "r2",
        [
            ("u1", "AT", "25-34", None),  # changed, no timestamp: at `change`
            ("u2", "FR", None, None),  # unchanged: nothing happens
            ("u3", "IT", "45-54", ts(1, 15, 8)),  # changed at its own time
            ("u4", "ES", None, None),  # new key: valid since the beginning
            ("u5", "BE", None, ts(2, 20)),  # dated before u5's current start: a correction
        ],
    )
    got = lake.merge_versions(
        "bronze.users", second, ["user_id"], compare, change, touch=["updated_run_id"]
    )
    # 4 rows inserted (new versions of u1, u3, u5 and the new key u4), 3 versions closed
    assert (got["inserted"], got["updated"]) == (4, 3)
    expected = spark.createDataFrame(
        [
            ("u1", "DE", "25-34", None, change, False, "r2"),
            ("u1", "AT", "25-34", change, None, True, "r2"),
            ("u2", "FR", None, None, None, True, "r1"),
            ("u3", "IT", "35-44", ts(1, 1, 10), ts(1, 15, 8), False, "r2"),
            ("u3", "IT", "45-54", ts(1, 15, 8), None, True, "r2"),
            ("u4", "ES", None, None, None, True, "r2"),
            # the corrected version keeps an empty interval: it was never valid
            ("u5", "NL", None, ts(3, 1), ts(3, 1), False, "r2"),
            ("u5", "BE", None, ts(3, 1), None, True, "r2"),
        ],
        HISTORY,
    )
    table = lake.read("bronze.users").select(*HISTORY_COLUMNS)
    assertDataFrameEqual(table, expected)

    # The same batch again changes nothing and counts nothing.
    got = lake.merge_versions(
        "bronze.users", second, ["user_id"], compare, ts(2, 2), touch=["updated_run_id"]
    )
    assert (got["inserted"], got["updated"]) == (0, 0)
    assertDataFrameEqual(lake.read("bronze.users").select(*HISTORY_COLUMNS), expected)

    # As of 01-31 (its end is `change`) u1 is already AT and u3 45-54; a day earlier not.
    def as_of(day: dt.date) -> list[Row]:
        return (
            attributes_as_of(lake.read("bronze.users"), day, "user_id")
            .select("user_id", "country", "age_band")
            .collect()
        )

    assertDataFrameEqual(
        as_of(dt.date(2024, 1, 30)),
        [Row("u1", "DE", "25-34"), Row("u2", "FR", None), Row("u3", "IT", "45-54"),
         Row("u4", "ES", None)],
    )  # fmt: skip
    assertDataFrameEqual(
        as_of(dt.date(2024, 1, 14)),
        [Row("u1", "DE", "25-34"), Row("u2", "FR", None), Row("u3", "IT", "35-44"),
         Row("u4", "ES", None)],
    )  # fmt: skip
    assertDataFrameEqual(
        as_of(dt.date(2024, 3, 1)),
        [Row("u1", "AT", "25-34"), Row("u2", "FR", None), Row("u3", "IT", "45-54"),
         Row("u4", "ES", None), Row("u5", "BE", None)],
    )  # fmt: skip


HISTORY_COLUMNS = [f.split()[0] for f in HISTORY.split(", ")]


def test_attributes_as_of_uses_the_end_of_the_day(spark: SparkSession) -> None:
    rows = spark.createDataFrame(
        [
            ("k1", "a", None, ts(1, 10, 12), False),
            ("k1", "b", ts(1, 10, 12), None, True),
            ("k2", "c", ts(1, 11), None, True),  # starts exactly at the end of 01-10
            ("k3", "x", ts(1, 5), ts(1, 5), False),  # an empty interval: never valid
            ("k3", "y", ts(1, 5), None, True),
        ],
        "key string, value string, valid_from timestamp, valid_to timestamp, " "is_current boolean",
    )
    assertDataFrameEqual(
        attributes_as_of(rows, dt.date(2024, 1, 9), "key"), [Row("k1", "a"), Row("k3", "y")]
    )
    assertDataFrameEqual(
        attributes_as_of(rows, dt.date(2024, 1, 10), "key"),
        [Row("k1", "b"), Row("k2", "c"), Row("k3", "y")],
    )
    assertDataFrameEqual(attributes_as_of(rows, dt.date(2024, 1, 3), "key"), [Row("k1", "a")])


def _context(spark: SparkSession, lake: Lake, as_of: dt.date) -> JobContext:
    return JobContext(
        args=argparse.Namespace(),
        cfg=load_config("local", TEST_OVERRIDES),
        spark=spark,
        lake=lake,
        run=RunRecorder(job="test", params={}),
        as_of=as_of,
    )


def _events(spark: SparkSession, rows: list[tuple[object, ...]]) -> DataFrame:
    """bronze.events rows from (event_id, ts, item_id, category, price)."""
    df = spark.createDataFrame(
        rows, "event_id string, ts timestamp, item_id string, category string, price double"
    )
    return df.withColumns(
        {
            "user_id": F.lit("u1"),
            "event_type": F.lit("view"),
            "event_date": F.to_date("ts"),
            "source": F.lit("test"),
            "ingest_run_id": F.lit("r0"),
        }
        | {
            f.name: F.lit(None).cast(f.dataType)
            for f in EVENTS.fields
            if f.name
            not in {
                "event_id",
                "ts",
                "item_id",
                "category",
                "price",
                "user_id",
                "event_type",
                "event_date",
                "source",
                "ingest_run_id",
            }
        }  # fmt: skip
    ).select(*EVENTS.fieldNames())


def test_catalogue_from_events_stops_at_the_as_of_day(spark: SparkSession, lake: Lake) -> None:
    events = _events(
        spark,
        [
            ("e1", ts(1, 5), "i1", "A", 10.0),
            ("e2", ts(1, 20), "i1", None, 12.0),
            ("e3", dt.datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC), "i2", None, 5.0),
            ("e4", ts(2, 1), "i3", "B", 7.0),  # first seen after the as-of day
            ("e5", ts(2, 2), "i1", "A", 20.0),  # a later price of i1: not averaged in
        ],
    )
    got = catalog_frame(_context(spark, lake, dt.date(2024, 1, 31)), events, dt.date(2024, 1, 31))
    # i2 never had a category: it stays null (each such item is its own group for the
    # per-category cap, so a catalogue without categories still fills every list to K)
    assertDataFrameEqual(got, [Row("i1", "A", 11.0), Row("i2", None, 5.0)])


def test_catalogue_from_items_as_of(spark: SparkSession, lake: Lake) -> None:
    items = spark.createDataFrame(
        [
            ("i1", "A", 10.0, None),
            ("i2", "B", 5.0, None),
            ("i9", "Z", 1.0, ts(3, 1)),  # listed from 03-01 on
        ],
        "item_id string, category string, price double, valid_from timestamp",
    ).withColumns({"brand": F.lit(None), "title": F.lit(None), "department": F.lit(None),
                   "source": F.lit("test"), "updated_run_id": F.lit("r1")})  # fmt: skip
    compare = ["category", "brand", "price", "title"]
    lake.merge_versions("bronze.items", items, ["item_id"], compare, ts(1, 2))
    recategorised = items.where("item_id = 'i1'").withColumn("category", F.lit("C"))
    lake.merge_versions("bronze.items", recategorised, ["item_id"], compare, ts(2, 1))
    events = _events(spark, [("e1", ts(1, 5), "i7", "Q", 1.0)])  # not used: items exist

    def catalogue(day: dt.date) -> DataFrame:
        return catalog_frame(_context(spark, lake, day), events, day)

    assertDataFrameEqual(
        catalogue(dt.date(2024, 1, 30)), [Row("i1", "A", 10.0), Row("i2", "B", 5.0)]
    )
    assertDataFrameEqual(
        catalogue(dt.date(2024, 1, 31)), [Row("i1", "C", 10.0), Row("i2", "B", 5.0)]
    )
    assertDataFrameEqual(
        catalogue(dt.date(2024, 3, 1)),
        [Row("i1", "C", 10.0), Row("i2", "B", 5.0), Row("i9", "Z", 1.0)],
    )


def test_a_lake_of_the_old_schema_is_a_clear_error(
    spark: SparkSession,
    lake_root: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # bronze.users as an earlier release created it: no valid_from / valid_to / is_current
    old = USERS.__class__([f for f in USERS.fields if f.name not in {"valid_from", "valid_to",
                                                                      "is_current"}])  # fmt: skip
    monkeypatch.setitem(SCHEMAS, "users_v0", old)
    catalog = {**load_catalog(), "bronze.users": {"schema": "users_v0"}}
    Lake(spark, lake_root, catalog).create("bronze.users")

    root = tmp_path / "syn"
    for sub in ("events", "users"):
        (root / sub).mkdir(parents=True)
    event = {"event_id": "a1", "user_id": "u1", "ts": "2024-01-05T13:45:12Z",
             "event_type": "search"}  # fmt: skip
    (root / "events" / "part-0.json").write_text(json.dumps(event))
    (root / "users" / "part-0.json").write_text(json.dumps({"user_id": "u1", "country": "DE"}))
    code = ingest(job_args(lake_root, "--source", "synthetic", "--input", str(root)))
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("shopperlake ingest: error: table 'bronze.users' at ")
    assert err.endswith(
        "lacks column(s) valid_from, valid_to, is_current (created by an older ShopperLake): "
        "re-ingest into a fresh lake (a new lake.root)"
    )


def test_ingest_dates_changes_by_the_mapped_attribute_timestamp(
    spark: SparkSession, lake: Lake, lake_root: str, tmp_path: Path
) -> None:
    mapping = tmp_path / "dated.yaml"
    mapping.write_text(
        "entities:\n  users:\n    format: json\n    fields: [id, land, updated_at]\n"
        "    columns: {user_id: id, country: land, valid_from: updated_at}\n"
    )
    users = tmp_path / "users.json"

    def load(as_of: str, *rows: dict[str, str]) -> Row:
        users.write_text("\n".join(json.dumps(r) for r in rows))
        args = ["--source", "dated", "--mapping", str(mapping), "--input", str(users)]
        assert ingest(job_args(lake_root, *args, "--as-of", as_of)) == 0
        run = lake.read("meta.runs").orderBy(F.col("started_at").desc()).first()
        assert run is not None
        return run

    run = load(
        "2024-01-31",
        {"id": "u1", "land": "DE", "updated_at": "2024-01-05T10:00:00Z"},
        {"id": "u2", "land": "NL", "updated_at": "2024-01-03T00:00:00Z"},
        {"id": "u2", "land": "BE", "updated_at": "2024-01-20T00:00:00Z"},  # the later one wins
        {"id": "u3", "land": "IT", "updated_at": "soon"},  # not a timestamp
    )
    terms = ("rows_read", "rows_written", "repeated", "present", "rows_quarantined")
    assert [run.metrics[f"users.{t}"] for t in terms] == [4, 2, 1, 0, 1]
    assert [r.reason for r in lake.read("bronze.quarantine").collect()] == ["bad_type:valid_from"]
    run = load(
        "2024-02-29",
        {"id": "u1", "land": "FR", "updated_at": "2024-02-10T08:00:00Z"},  # dated change
        {"id": "u2", "land": "BE", "updated_at": "2024-02-01T00:00:00Z"},  # same attributes
    )
    assert [run.metrics[f"users.{t}"] for t in terms] == [2, 1, 0, 1, 0]
    assert run.metrics["users.versions_closed"] == 1
    assertDataFrameEqual(
        lake.read("bronze.users").select("user_id", "country", "valid_from", "valid_to"),
        spark.createDataFrame(
            [
                ("u1", "DE", ts(1, 5, 10), ts(2, 10, 8)),
                ("u1", "FR", ts(2, 10, 8), None),
                ("u2", "BE", ts(1, 20), None),
            ],
            "user_id string, country string, valid_from timestamp, valid_to timestamp",
        ),
    )
