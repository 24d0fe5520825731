"""The Online Retail II source: a hand-built file in its exact format, each line's fate worked
out by hand (which quarantine reasons, or which canonical event), and bad mappings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shopperlake.core.lake import Lake
from shopperlake.ingest.job import main as ingest
from tests.conftest import job_args

HEADER = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country"
# line -> the reasons it is quarantined for (set), or None when it becomes an event
LINES: list[tuple[str, set[str] | None]] = [
    ("500001,85048,LIGHTS,12,12/1/2009 7:45,6.95,13085.0,United Kingdom", None),
    # the same line again: the first copy is kept
    ("500001,85048,LIGHTS,12,12/1/2009 7:45,6.95,13085.0,United Kingdom", {"exact_duplicate"}),
    ("500001,POST,POSTAGE,1,12/1/2009 7:45,18.0,13085.0,United Kingdom", {"non_product_code"}),
    ("500002,22222,THING,6,12/2/2009 10:00,2.5,,United Kingdom", {"missing_required:user_id"}),
    (
        "A500003,B,Adjust bad debt,1,12/3/2009 9:00,-100.0,13085.0,United Kingdom",
        {"implausible_price", "non_product_code", "adjustment_invoice", "non_positive_price"},
    ),
    (
        "500004,85048,LIGHTS,-3,12/4/2009 9:00,6.95,13085.0,United Kingdom",
        {"bad_quantity", "negative_quantity_outside_return"},
    ),
    # a cancellation of an item bought on 12/1: a return of 2
    ("C500005,85048,LIGHTS,-2,12/5/2009 9:00,6.95,13085.0,United Kingdom", None),
    (
        "C500006,99999,NEVER BOUGHT,-1,12/5/2009 9:00,1.0,13085.0,United Kingdom",
        {"return_without_earlier_purchase"},
    ),
    ("500007,22222,THING,4,12/6/2009 23:30,0.0,14000.0,France", {"non_positive_price"}),
    # British summer time: 12:00 in London is 11:00 UTC
    ("500008,22222,THING,4,6/7/2010 12:00,2.5,14000.0,France", None),
    ("C500009,22222,THING,-4,6/8/2010 9:00,2.5,14000.0,France", None),
    ('500010,21000,"BAG, RED",1,6/9/2010 9:00,1.25,15000.0,Germany', None),
]


@pytest.fixture()
def retail_file(tmp_path: Path) -> Path:
    path = tmp_path / "online_retail.csv"
    path.write_text("\n".join([HEADER, *(line for line, _ in LINES)]) + "\n")
    return path


def test_every_line_is_an_event_or_quarantined_for_its_reasons(
    spark: SparkSession, lake: Lake, lake_root: str, retail_file: Path
) -> None:
    args = ["--source", "online_retail", "--input", str(retail_file), "--as-of", "2011-12-09"]
    assert ingest(job_args(lake_root, *args)) == 0

    events = lake.read("bronze.events")
    assert events.count() == 5  # the five lines marked None above
    got = {
        r.order_id: r
        for r in events.select("order_id", "user_id", "event_type", "item_id", "quantity",
                               "price", "ts", "channel").collect()
    }  # fmt: skip
    assert set(got) == {"500001", "C500005", "500008", "C500009", "500010"}
    assert (got["500001"].event_type, got["500001"].user_id, got["500001"].quantity) == (
        "purchase", "13085", 12,
    )  # fmt: skip
    ret = got["C500005"]
    assert (ret.event_type, ret.user_id, ret.item_id, ret.quantity) == ("return", "13085",
                                                                          "85048", 2)  # fmt: skip
    assert got["500008"].ts == dt.datetime(2010, 6, 7, 11, 0)  # session time zone is UTC
    assert got["500001"].ts == dt.datetime(2009, 12, 1, 7, 45)  # GMT in winter
    assert got["C500009"].quantity == 4 and got["500010"].price == 1.25

    quarantined = lake.read("bronze.quarantine").where(F.col("entity") == "events").collect()
    expected = sorted(sorted(r) for _, r in LINES if r is not None)
    assert sorted(sorted(q.reason.split("; ")) for q in quarantined) == expected

    run = lake.read("meta.runs").first()
    assert run is not None and run.metrics is not None
    assert run.metrics["events.rows_read"] == len(LINES)
    assert run.metrics["events.rows_written"] == 5
    assert run.metrics["events.rows_quarantined"] == 7

    # users: every line with a customer id (three customers); the one without is quarantined
    users = {r.user_id: r.country for r in lake.read("bronze.users").collect()}
    assert users == {"13085": "United Kingdom", "14000": "France", "15000": "Germany"}
    q_users = lake.read("bronze.quarantine").where(F.col("entity") == "users").collect()
    assert [q.reason for q in q_users] == ["missing_required:user_id"]
    # items: product codes only (POST and B are quarantined)
    items = {r.item_id for r in lake.read("bronze.items").collect()}
    assert items == {"85048", "22222", "99999", "21000"}
    q_items = lake.read("bronze.quarantine").where(F.col("entity") == "items").count()
    assert q_items == 2


def test_a_reject_rule_that_is_not_sql_stops_before_writing(
    spark: SparkSession, lake: Lake, lake_root: str, retail_file: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    mapping = tmp_path / "bad.yaml"
    mapping.write_text(
        "name: bad\nentities:\n  events:\n    format: csv\n    header: true\n"
        "    fields: [invoice, stockcode, description, quantity, invoicedate, price,"
        " customer_id, country]\n"
        "    timestamp: {field: invoicedate, format: 'M/d/yyyy H:mm'}\n"
        "    columns: {user_id: customer_id}\n    constants: {event_type: purchase}\n"
        "    reject:\n      - {reason: broken_rule, when: 'price >>> 3'}\n"
    )
    args = ["--source", "online_retail", "--mapping", str(mapping), "--input", str(retail_file)]
    assert ingest(job_args(lake_root, *args)) != 0
    err = capsys.readouterr().err
    assert "reject rule 'broken_rule'" in err and "not valid Spark SQL" in err
    assert not lake.exists("bronze.events")


def test_without_input_the_source_names_the_make_target(
    spark: SparkSession, lake_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("SHOPPERLAKE_HOME", str(tmp_path))  # a checkout without data/
    assert ingest(job_args(lake_root, "--source", "online_retail")) != 0
    err = capsys.readouterr().err
    assert "data/online_retail/online_retail.csv" in err and "make data" in err
