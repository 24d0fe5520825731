"""Ingest on hand-built files: every quarantine reason, the row accounting, idempotent
re-ingest, upserts, PII, and clear errors for bad input."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from shopperlake.core.lake import Lake
from shopperlake.ingest.job import main as ingest
from tests.conftest import job_args

UTC = dt.UTC
HEADER = (
    "id,customer,session,event_time,action,sku,cat,unit_price,qty,order_ref,"
    "search_terms,stars,device_type,utm_source"
)
# (line, expected reason or None for valid). Times are Europe/Berlin wall clock (UTC+1 in
# winter): 2024-02-01 10:00:00 local is 09:00:00 UTC.
CUSTOM_LINES = [
    ("e1,u1,s1,2024-02-01 10:00:00,page_view,i1,c1,10.0,,,,,mobile,web", None),
    ("e2,u1,s1,2024-02-01 10:05:00,ORDER,i1,c1,0,2,o1,,,mobile,web", None),  # zero price is real
    ("e3,u2,s2,2024-02-01 11:00:00,rating,i1,c1,,,,,5,desktop,app", None),
    ("e4,u2,s2,2024-02-01 11:00:00,page_view,i1", "malformed_record"),
    ("e5,,s2,2024-02-01 11:00:00,page_view,i1,c1,1.0,,,,,desktop,app", "missing_required:user_id"),
    ("e6,u3,s3,yesterday,page_view,i1,c1,1.0,,,,,desktop,app", "bad_timestamp"),
    ("e7,u3,s3,1980-05-01 00:00:00,page_view,i1,c1,1.0,,,,,desktop,app", "implausible_timestamp"),
    ("e8,u3,s3,2100-05-01 00:00:00,page_view,i1,c1,1.0,,,,,desktop,app", "implausible_timestamp"),
    (
        "e9,u3,s3,2024-02-01 12:00:00,teleport,i1,c1,1.0,,,,,desktop,app",
        "unknown_event_type:teleport",
    ),
    ("e10,u3,s3,2024-02-01 12:00:00,page_view,i1,c1,abc,,,,,desktop,app", "bad_type:price"),
    ("e11,u3,s3,2024-02-01 12:00:00,order,i1,c1,-5,1,o2,,,desktop,app", "implausible_price"),
    ("e12,u3,s3,2024-02-01 12:00:00,order,i1,c1,5,0,o3,,,desktop,app", "bad_quantity"),
    ("e13,u3,s3,2024-02-01 12:00:00,rating,i1,c1,,,,,7,desktop,app", "bad_rating"),
    ("e14,u3,s3,2024-02-01 12:00:00,page_view,,c1,1.0,,,,,desktop,app", "missing_item_for:view"),
    ("e15,u3,s3,2024-02-01 12:00:00,cart_add,i1,c1,1.0,1.5,,,,desktop,app", "bad_type:quantity"),
    (",u3,s3,2024-02-01 12:00:00,page_view,i1,c1,1.0,,,,,desktop,app", "missing_required:event_id"),
]


def write_custom(tmp_path: Path, lines: list[str], name: str = "shop.csv") -> Path:
    folder = tmp_path / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join([HEADER, *lines]) + "\n")
    return folder


def run_ingest(lake_root: str, *args: str) -> int:
    return ingest(job_args(lake_root, *args))


def last_run(lake: Lake) -> Row:
    runs = lake.read("meta.runs").orderBy(F.col("started_at").desc())
    row = runs.first()
    assert row is not None
    return row


def test_every_quarantine_reason_and_valid_rows(
    spark: SparkSession, lake: Lake, lake_root: str, tmp_path: Path
) -> None:
    raw = write_custom(tmp_path, [line for line, _ in CUSTOM_LINES])
    assert (
        run_ingest(lake_root, "--source", "custom", "--input", str(raw), "--as-of", "2024-06-30")
        == 0
    )

    quarantine = lake.read("bronze.quarantine").select("raw_record", "reason", "entity", "source")
    expected_bad = [
        Row(raw_record=line, reason=reason, entity="events", source="custom")
        for line, reason in CUSTOM_LINES
        if reason
    ]
    # Rows the CSV parser understood keep their fields as JSON; the broken one keeps its text.
    got = {
        (
            r.reason,
            r.raw_record if r.reason == "malformed_record" else json.loads(r.raw_record)["id"],
        )
        for r in quarantine.collect()
    }
    want = {
        (
            r.reason,
            r.raw_record
            if r.reason == "malformed_record"
            else (r.raw_record.split(",")[0] or None),
        )
        for r in expected_bad
    }
    assert got == want
    assert all(r.entity == "events" and r.source == "custom" for r in quarantine.collect())

    events = lake.read("bronze.events").select(
        "event_id",
        "user_id",
        "ts",
        "event_type",
        "item_id",
        "price",
        "quantity",
        "order_id",
        "rating",
        "event_date",
        "source",
    )
    t = dt.datetime
    expected = spark.createDataFrame(
        [
            ("e1", "u1", t(2024, 2, 1, 9, 0, tzinfo=UTC), "view", "i1", 10.0, None, None, None),
            ("e2", "u1", t(2024, 2, 1, 9, 5, tzinfo=UTC), "purchase", "i1", 0.0, 2, "o1", None),
            ("e3", "u2", t(2024, 2, 1, 10, 0, tzinfo=UTC), "review", "i1", None, None, None, 5),
        ],
        "event_id string, user_id string, ts timestamp, event_type string, item_id string, "
        "price double, quantity int, order_id string, rating int",
    ).withColumns({"event_date": F.lit(dt.date(2024, 2, 1)), "source": F.lit("custom")})
    assertDataFrameEqual(events, expected)

    run = last_run(lake)
    assert (
        run.status,
        run.rows_read,
        run.rows_written,
        run.rows_duplicate,
        run.rows_quarantined,
    ) == (
        "success",
        16,
        3,
        0,
        13,
    )
    assert run.outputs["bronze.events"] == lake.version("bronze.events")


def test_reingest_adds_nothing_and_accounting_holds(
    spark: SparkSession, lake: Lake, lake_root: str, tmp_path: Path
) -> None:
    raw = write_custom(tmp_path, [line for line, _ in CUSTOM_LINES])
    args = ("--source", "custom", "--input", str(raw), "--as-of", "2024-06-30")
    assert run_ingest(lake_root, *args) == 0
    events_before = lake.read("bronze.events").drop("ingest_run_id").collect()
    quarantine_before = lake.read("bronze.quarantine").select("quarantine_id", "reason").collect()
    assert run_ingest(lake_root, *args) == 0
    assertDataFrameEqual(lake.read("bronze.events").drop("ingest_run_id"), events_before)
    assertDataFrameEqual(
        lake.read("bronze.quarantine").select("quarantine_id", "reason"), quarantine_before
    )
    run = last_run(lake)
    assert (run.rows_read, run.rows_written, run.rows_duplicate, run.rows_quarantined) == (
        16,
        0,
        3,
        13,
    )
    # A new file with one new and one known event: only the new one is written.
    write_custom(
        tmp_path,
        [CUSTOM_LINES[0][0], "e99,u9,s9,2024-02-02 08:00:00,search,,,,,,shoes,,app,ads"],
        "day2.csv",
    )
    assert run_ingest(lake_root, *args) == 0
    run = last_run(lake)
    assert (run.rows_read, run.rows_written, run.rows_duplicate, run.rows_quarantined) == (
        18,
        1,
        17 - 13 - 1 + 1,
        13,
    )
    assert lake.read("bronze.events").count() == 4


CDNOW_STYLE = [
    " customer_id  date number_of_cds  dollar_value",
    " 00001 19970101  1   11.77",
    " 00002 19970112  1   12.00",
    " 00002 19970112  1   12.00",  # the same purchase twice that day: two real events
    " 00003 19970102  2    0.00",  # a free promotion: zero price is real
    " 00004 1997010x  2   20.76",
    " 00005 19970105  2",
]


def test_identical_lines_are_distinct_events_with_stable_ids(
    spark: SparkSession, lake: Lake, lake_root: str, tmp_path: Path
) -> None:
    path = tmp_path / "cdnow.txt"
    path.write_text("\r\n".join(CDNOW_STYLE) + "\r\n")
    assert run_ingest(lake_root, "--source", "cdnow", "--input", str(path)) == 0
    events = lake.read("bronze.events")
    got = events.select("user_id", "ts", "price", "quantity", "event_type").collect()
    day = dt.datetime
    assert sorted(got, key=lambda r: (r.user_id, r.price)) == [
        Row(user_id="00001", ts=day(1997, 1, 1), price=11.77, quantity=1, event_type="purchase"),
        Row(user_id="00002", ts=day(1997, 1, 12), price=12.0, quantity=1, event_type="purchase"),
        Row(user_id="00002", ts=day(1997, 1, 12), price=12.0, quantity=1, event_type="purchase"),
        Row(user_id="00003", ts=day(1997, 1, 2), price=0.0, quantity=2, event_type="purchase"),
    ]
    ids = {r.event_id for r in events.select("event_id").collect()}
    assert len(ids) == 4
    # Each line is its own order.
    assert events.where("order_id = event_id").count() == 4
    reasons = sorted(r.reason for r in lake.read("bronze.quarantine").collect())
    assert reasons == ["bad_timestamp", "malformed_record"]
    assert run_ingest(lake_root, "--source", "cdnow", "--input", str(path)) == 0
    assert {r.event_id for r in lake.read("bronze.events").select("event_id").collect()} == ids


def test_synthetic_json_items_users_upsert_and_pii(
    spark: SparkSession, lake: Lake, lake_root: str, tmp_path: Path
) -> None:
    root = tmp_path / "syn"
    for sub in ("events", "items", "users"):
        (root / sub).mkdir(parents=True)
    ev = {
        "event_id": "a1",
        "user_id": "u1",
        "ts": "2024-01-05T13:45:12Z",
        "event_type": "view",
        "item_id": "i1",
        "category": "c1",
        "price": 9.5,
    }
    (root / "events" / "part-0.json").write_text(
        json.dumps(ev) + "\n" + '{"event_id": "a2", "user_id": "u1", "ts": "2024-01\n'
    )
    items_v1 = [
        {"item_id": "i1", "category": "c1", "brand": "b", "price": 9.5, "title": "T"},
        {"item_id": "i2", "category": "c2", "brand": "b", "price": 3.0, "title": "U"},
    ]
    (root / "items" / "part-0.json").write_text("\n".join(json.dumps(i) for i in items_v1))
    (root / "users" / "part-0.json").write_text(
        json.dumps(
            {
                "user_id": "u1",
                "signup_date": "2023-12-01",
                "country": "DE",
                "age_band": "25-34",
                "email": "jane@example.com",
            }
        )
    )
    assert (
        run_ingest(
            lake_root, "--source", "synthetic", "--input", str(root), "--as-of", "2024-01-31"
        )
        == 0
    )
    assert lake.read("bronze.events").select("event_id", "ts").collect() == [
        Row(event_id="a1", ts=dt.datetime(2024, 1, 5, 13, 45, 12))
    ]
    q = lake.read("bronze.quarantine").collect()
    assert [(r.reason, r.raw_record) for r in q] == [
        ("malformed_record", '{"event_id": "a2", "user_id": "u1", "ts": "2024-01')
    ]
    users = lake.read("bronze.users")
    assert "email" not in users.columns
    assert not any("jane@example.com" in str(r) for r in users.collect())
    assert users.select("user_id", "signup_date", "country").collect() == [
        Row(user_id="u1", signup_date=dt.date(2023, 12, 1), country="DE")
    ]
    # Price change for i2 only, ingested as of 02-15: i2's version closes at the end of that
    # day and a new one starts there; i1 is an unchanged duplicate.
    items_v2 = [items_v1[0], {**items_v1[1], "price": 4.0}]
    (root / "items" / "part-0.json").write_text("\n".join(json.dumps(i) for i in items_v2))
    assert (
        run_ingest(
            lake_root, "--source", "synthetic", "--input", str(root), "--as-of", "2024-02-15"
        )
        == 0
    )
    run = last_run(lake)
    assert run.metrics["items.rows_written"] == 1.0
    assert run.metrics["items.rows_duplicate"] == 1.0
    assert run.metrics["items.versions_closed"] == 1.0
    assert run.metrics["events.rows_written"] == 0.0
    change = dt.datetime(2024, 2, 16, tzinfo=UTC)
    assertDataFrameEqual(
        lake.read("bronze.items").select(
            "item_id", "price", "valid_from", "valid_to", "is_current", "source"
        ),
        spark.createDataFrame(
            [
                ("i1", 9.5, None, None, True, "synthetic"),
                ("i2", 3.0, None, change, False, "synthetic"),
                ("i2", 4.0, change, None, True, "synthetic"),
            ],
            "item_id string, price double, valid_from timestamp, valid_to timestamp, "
            "is_current boolean, source string",
        ),
    )
    # the closed version names the run that closed it, the new one the run that wrote it
    assert {
        r.updated_run_id for r in lake.read("bronze.items").where("item_id = 'i2'").collect()
    } == {run.run_id}


INSTACART = [
    ",order_id,user_id,order_number,order_dow,order_hour_of_day,days_since_prior_order,product_id,add_to_cart_order,reordered",
    "0,100,7,1,3,8,,11,1.0,0.0",
    "1,100,7,1,3,8,,12,2.0,0.0",
    "2,101,7,2,6,15,10.0,11,1.0,1.0",
    "3,102,7,3,2,9,3.0,13,1.0,0.0",
    "4,200,8,1,0,23,,11,1.0,0.0",
]


def test_instacart_timeline_follows_relative_days(
    spark: SparkSession, lake: Lake, lake_root: str, tmp_path: Path
) -> None:
    path = tmp_path / "ic.csv"
    path.write_text("\n".join(INSTACART) + "\n")
    assert run_ingest(lake_root, "--source", "instacart", "--input", str(path)) == 0
    rows = {(r.order_id, r.item_id): r.ts for r in lake.read("bronze.events").collect()}
    assert len(rows) == 5
    first = rows[("100", "11")]
    # Python's weekday(): Monday 0 .. Sunday 6; Instacart's order_dow 3 = Wednesday.
    assert (first.weekday() + 1) % 7 == 3
    assert dt.date(2017, 1, 1) <= first.date() <= dt.date(2017, 2, 4)
    assert first.hour == 8 and first.second == 1
    assert rows[("100", "12")] - first == dt.timedelta(seconds=1)
    assert rows[("101", "11")].date() - first.date() == dt.timedelta(days=10)
    assert rows[("101", "11")].hour == 15
    assert rows[("102", "13")].date() - first.date() == dt.timedelta(days=13)
    other = rows[("200", "11")]
    assert (other.weekday() + 1) % 7 == 0 and other.hour == 23
    assert lake.read("bronze.events").where("event_id = 'ic-100-12'").count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--source", "custom", "--input", "/no/such/dir"],
            "input path does not exist: /no/such/dir",
        ),
        (["--source", "shopify"], "unknown source 'shopify'"),
        (
            ["--source", "custom", "--input", "X", "--as-of", "2024-02-30"],
            "invalid --as-of '2024-02-30'",
        ),
        (
            ["--source", "custom", "--input", "X", "--set", "ingest.nope=1"],
            "unknown config key 'ingest.nope'",
        ),
        (["--source", "custom", "--input", "X", "--env", "mars"], "unknown environment 'mars'"),
        (["--source", "synthetic"], "source 'synthetic' needs --input PATH"),
    ],
)
def test_bad_arguments_give_one_line_errors(
    lake_root: str, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert run_ingest(lake_root, *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("shopperlake ingest: error: ")
    assert message in err[-1]


def test_bad_mapping_and_wrong_header(
    lake_root: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text("entities:\n  events:\n    format: xml\n    fields: [a]\n")
    raw = write_custom(tmp_path, [CUSTOM_LINES[0][0]])
    assert (
        run_ingest(lake_root, "--source", "mine", "--mapping", str(mapping), "--input", str(raw))
        == 2
    )
    assert (
        "entities.events.format must be one of csv, json, parquet, text" in capsys.readouterr().err
    )
    mapping.write_text(
        "entities:\n  events:\n    format: csv\n    header: true\n    fields: [a, b]\n"
        "    timestamp: {field: b}\n    columns: {user_id: a, event_type: a}\n"
    )
    assert (
        run_ingest(lake_root, "--source", "mine", "--mapping", str(mapping), "--input", str(raw))
        == 2
    )
    assert "CSV header of" in capsys.readouterr().err


def test_unreadable_file_is_a_clear_error(
    lake: Lake, lake_root: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "broken.csv.gz"
    bad.write_bytes(b"this is not gzip data\n")
    assert run_ingest(lake_root, "--source", "custom", "--input", str(bad)) == 2
    err = capsys.readouterr().err
    assert "cannot read events input" in err and "broken.csv.gz" in err
    assert last_run(lake).status == "failed"


def test_failed_job_leaves_tables_at_previous_version(
    spark: SparkSession,
    lake: Lake,
    lake_root: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    raw = write_custom(tmp_path, [CUSTOM_LINES[0][0]])
    assert (
        run_ingest(lake_root, "--source", "custom", "--input", str(raw), "--as-of", "2024-06-30")
        == 0
    )
    before = lake.read("bronze.events").collect()
    version = lake.version("bronze.events")
    # Day 2 has new events and a bad row, but the quarantine location is a plain file:
    # the events MERGE commits, then writing the quarantine fails, and the job must undo it.
    write_custom(tmp_path, [CUSTOM_LINES[1][0], CUSTOM_LINES[4][0]], "day2.csv")
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    code = run_ingest(
        lake_root,
        "--source",
        "custom",
        "--input",
        str(raw),
        "--as-of",
        "2024-06-30",
        "--set",
        f"lake.locations.bronze.quarantine={blocker}/q",
    )
    assert code == 2
    assert "not writable" in capsys.readouterr().err
    assertDataFrameEqual(lake.read("bronze.events"), before)
    # The events MERGE committed, then the RESTORE put the old content back.
    ops = [r.operation for r in lake.history("bronze.events").orderBy("version").collect()]
    assert lake.version("bronze.events") == version + 2 and ops[-2:] == ["MERGE", "RESTORE"]
    failed = last_run(lake)
    assert failed.status == "failed" and "not writable" in failed.error


def test_pseudonymised_user_ids_are_keyed_hashes(
    spark: SparkSession, lake: Lake, lake_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import hmac

    root = tmp_path / "syn"
    for sub in ("events", "users"):
        (root / sub).mkdir(parents=True)
    events = [
        {"event_id": f"a{i}", "user_id": u, "ts": "2024-01-05T13:45:12Z", "event_type": "view",
         "item_id": "i1", "category": "c1", "price": 1.0}
        for i, u in enumerate(["u1", "u1", "u2"])
    ]  # fmt: skip
    (root / "events" / "part-0.json").write_text("\n".join(json.dumps(e) for e in events))
    (root / "users" / "part-0.json").write_text(
        json.dumps({"user_id": "u2", "signup_date": "2023-12-01", "country": "DE"})
    )
    args = ["--source", "synthetic", "--input", str(root), "--as-of", "2024-01-31"]
    on = "--set=ingest.pseudonymise_users=true"
    # No key: a clear error, a non-zero exit and nothing written.
    monkeypatch.delenv("SHOPPERLAKE_PSEUDO_KEY", raising=False)
    monkeypatch.delenv("SHOPPERLAKE_PSEUDO_KEY_FILE", raising=False)
    assert run_ingest(lake_root, *args, on) != 0
    assert not lake.exists("bronze.events")
    secret = "a-test-key-of-some-length"
    key_file = tmp_path / "key"
    key_file.write_text(secret + "\n")
    monkeypatch.setenv("SHOPPERLAKE_PSEUDO_KEY_FILE", str(key_file))
    assert run_ingest(lake_root, *args, on) == 0

    def expected(uid: str) -> str:  # the reference: Python's hmac, not the code under test
        return hmac.new(secret.encode(), uid.encode(), hashlib.sha256).hexdigest()[:32]

    got = sorted((r.event_id, r.user_id) for r in lake.read("bronze.events").collect())
    assert got == [("a0", expected("u1")), ("a1", expected("u1")), ("a2", expected("u2"))]
    assert [r.user_id for r in lake.read("bronze.users").collect()] == [expected("u2")]
    # Re-ingest with the same key is a no-op (same pseudonyms, same keys).
    assert run_ingest(lake_root, *args, on) == 0
    assert last_run(lake).metrics["events.rows_written"] == 0.0


# -- row accounting: every term measured on its own -----------------------------------------------


def test_each_accounting_term_is_measured(
    spark: SparkSession, lake: Lake, lake_root: str, tmp_path: Path
) -> None:
    day1 = write_custom(tmp_path / "day1", [CUSTOM_LINES[0][0]])  # e1
    args = ("--source", "custom", "--as-of", "2024-06-30")
    assert run_ingest(lake_root, *args, "--input", str(day1)) == 0
    # e1 again (already in the table), e2 and e3 twice each (2 repeats in the batch), e5
    # has no user (1 bad row): 6 read = 2 written + (2 + 1) duplicate + 1 quarantined.
    e2, e3, e5 = CUSTOM_LINES[1][0], CUSTOM_LINES[2][0], CUSTOM_LINES[4][0]
    e2_again = e2.replace("10:05:00", "10:06:00")  # same id, other content: still a repeat
    day2 = write_custom(tmp_path / "day2", [CUSTOM_LINES[0][0], e2, e2_again, e3, e3, e5])
    assert run_ingest(lake_root, *args, "--input", str(day2)) == 0
    terms = ("rows_read", "rows_written", "repeated", "present", "quarantine_inserted",
             "quarantine_present", "rows_duplicate", "rows_quarantined")  # fmt: skip
    run = last_run(lake)
    assert [run.metrics[f"events.{t}"] for t in terms] == [6, 2, 2, 1, 1, 0, 3, 1]
    assert (run.rows_read, run.rows_written, run.rows_duplicate, run.rows_quarantined) == (
        6, 2, 3, 1,
    )  # fmt: skip
    # the same batch again: nothing new, e1-e3 present, the bad row already quarantined
    assert run_ingest(lake_root, *args, "--input", str(day2)) == 0
    run = last_run(lake)
    assert [run.metrics[f"events.{t}"] for t in terms] == [6, 0, 2, 3, 0, 1, 5, 1]
    assertDataFrameEqual(
        lake.read("bronze.events").select("event_id"), [Row("e1"), Row("e2"), Row("e3")]
    )
    assert lake.read("bronze.quarantine").count() == 1


def _users_root(tmp_path: Path, users: list[dict[str, str]]) -> Path:
    root = tmp_path / "syn"
    for sub in ("events", "users"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    event = {"event_id": "a1", "user_id": "u1", "ts": "2024-01-05T13:45:12Z",
             "event_type": "search", "query": "shoes"}  # fmt: skip
    (root / "events" / "part-0.json").write_text(json.dumps(event) + "\n")
    (root / "users" / "part-0.json").write_text("\n".join(json.dumps(u) for u in users))
    return root


@pytest.mark.parametrize(
    ("entity", "lost", "message"),
    [
        (
            "events",
            "e2",
            # e1 present, e3 written, e2 dropped before the MERGE, e5 quarantined
            "row accounting mismatch for events: read 4 != written 1 + duplicate 1 (0 "
            "repeated in the batch, 1 already in bronze.events) + quarantined 1 (1 inserted, "
            "0 already in bronze.quarantine): 1 row(s) unaccounted for",
        ),
        (
            "users",
            "u2",
            # u1 unchanged (present), u3 written, u2 (a change) dropped before the MERGE
            "row accounting mismatch for users: read 3 != written 1 + duplicate 1 (0 "
            "repeated in the batch, 1 already in bronze.users) + quarantined 0 (0 inserted, "
            "0 already in bronze.quarantine): 1 row(s) unaccounted for",
        ),
    ],
)
def test_a_lost_row_fails_the_ingest_and_rolls_back(
    spark: SparkSession,
    lake: Lake,
    lake_root: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    entity: str,
    lost: str,
    message: str,
) -> None:
    import shopperlake.ingest.job as job

    if entity == "events":
        first = write_custom(tmp_path / "day1", [CUSTOM_LINES[0][0]])
        lines = [CUSTOM_LINES[i][0] for i in (0, 1, 2, 4)]  # e1, e2, e3, e5 (bad)
        second = write_custom(tmp_path / "day2", lines)
        args = ("--source", "custom", "--as-of", "2024-06-30")
    else:
        u1 = {"user_id": "u1", "country": "DE"}
        first = _users_root(tmp_path / "day1", [u1, {"user_id": "u2", "country": "FR"}])
        second = _users_root(
            tmp_path / "day2",
            [u1, {"user_id": "u2", "country": "AT"}, {"user_id": "u3", "country": "IT"}],
        )
        args = ("--source", "synthetic", "--as-of", "2024-01-31")
    assert run_ingest(lake_root, *args, "--input", str(first)) == 0
    tables = ("bronze.events", "bronze.users", "bronze.quarantine")
    before = {t: lake.read(t).collect() for t in tables if lake.exists(t)}

    # The planted loss: one valid row vanishes between validation and the MERGE.
    key = job.KEYS[entity]
    original = job.bronze_rows

    def leaky(firsts: DataFrame, kind: str, *rest: Any) -> DataFrame:
        rows = original(firsts, kind, *rest)
        return rows.where(F.col(key) != lost) if kind == entity else rows

    monkeypatch.setattr(job, "bronze_rows", leaky)
    assert run_ingest(lake_root, *args, "--input", str(second)) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"shopperlake ingest: error: {message}"
    )
    for table, rows in before.items():  # every table back at its previous content
        assertDataFrameEqual(lake.read(table), rows)
    failed = last_run(lake)
    assert (failed.status, failed.error) == ("failed", message)


PROMOTION_MAPPING = """
name: promo
entities:
  promotions:
    format: csv
    header: true
    fields: [sku, store, first_day, last_day, shelf]
    columns:
      promotion_id: "concat_ws(':', sku, store, first_day)"
      item_id: sku
      channel: store
      start_date: first_day
      end_date: last_day
      display: shelf
"""


def test_promotions_with_an_end_before_the_start_are_quarantined(
    spark: SparkSession, lake: Lake, lake_root: str, tmp_path: Path
) -> None:
    (tmp_path / "promo.yaml").write_text(PROMOTION_MAPPING)
    (tmp_path / "promo.csv").write_text(
        "sku,store,first_day,last_day,shelf\n"
        "p1,s1,2024-01-01,2024-01-07,front\n"
        "p2,s1,2024-01-07,2024-01-01,front\n"  # ends before it starts
        "p3,s2,2024-01-08,2024-01-08,\n"
    )
    args = ["--source", "promo", "--input", str(tmp_path / "promo.csv"),
            "--mapping", str(tmp_path / "promo.yaml"), "--as-of", "2024-01-31"]  # fmt: skip
    assert ingest(job_args(lake_root, *args), spark=spark) == 0
    got = sorted(
        (r.promotion_id, r.item_id, r.channel, str(r.start_date), str(r.end_date), r.display)
        for r in lake.read("bronze.promotions").collect()
    )
    assert got == [
        ("p1:s1:2024-01-01", "p1", "s1", "2024-01-01", "2024-01-07", "front"),
        ("p3:s2:2024-01-08", "p3", "s2", "2024-01-08", "2024-01-08", None),
    ]
    q = lake.read("bronze.quarantine").collect()
    assert [(r.entity, r.reason) for r in q] == [("promotions", "bad_period")]
    assert '"sku":"p2"' in q[0].raw_record
