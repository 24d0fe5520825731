"""gold.user_sequences on hand-built events: order and its tie rule, the last-N window, time
gaps across the window's edge, point in time, idempotent re-runs and bad arguments."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shopperlake.core.lake import Lake
from shopperlake.core.schemas import EVENTS
from shopperlake.sequences.job import main as build_sequences
from tests.conftest import job_args

T0 = dt.datetime(2024, 3, 1, 10, 0, 0)
AS_OF = "2024-03-02"


def event(eid: str, user: str, ts: dt.datetime, kind: str, item: str | None, cat: str | None):  # type: ignore[no-untyped-def]
    row = dict.fromkeys(EVENTS.fieldNames())
    return {**row, "event_id": eid, "user_id": user, "ts": ts, "event_type": kind,
            "item_id": item, "category": cat, "event_date": ts.date(), "source": "s",
            "ingest_run_id": "r"}  # fmt: skip


EVENTS_ROWS = [
    # u1: a view and its purchase in the same second (the purchase sorts after the view), a
    # click a minute later, a cart an hour later; a search (no item) and a view after the
    # as-of day do not count
    event("e9", "u1", T0, "purchase", "i1", "c1"),
    event("e1", "u1", T0, "view", "i1", "c1"),
    event("e3", "u1", T0 + dt.timedelta(seconds=60), "click", "i2", "c1"),
    event("e4", "u1", T0 + dt.timedelta(seconds=3600), "add_to_cart", "i3", "c2"),
    event("e5", "u1", T0 + dt.timedelta(seconds=3700), "search", None, None),
    event("e6", "u1", dt.datetime(2024, 3, 3, 0, 0, 0), "view", "i4", "c2"),
    # u2: one item event only: below min_events (2)
    event("e7", "u2", T0, "view", "i1", "c1"),
    # u3: two views of the same second: event id breaks the tie
    event("x_b", "u3", T0, "view", "i2", "c1"),
    event("x_a", "u3", T0, "view", "i5", None),
]


def test_sequences_by_hand_and_idempotent(spark: SparkSession, lake: Lake, lake_root: str) -> None:
    lake.append("bronze.events", spark.createDataFrame(EVENTS_ROWS, EVENTS))
    assert build_sequences(job_args(lake_root, "--as-of", AS_OF, "--max-len", "3")) == 0
    got = {r.user_id: r for r in lake.read("gold.user_sequences").collect()}
    assert set(got) == {"u1", "u3"}
    u1 = got["u1"]
    # the last 3 of view i1, purchase i1, click i2, cart i3
    assert u1.item_ids == ["i1", "i2", "i3"]
    assert u1.event_types == ["purchase", "click", "add_to_cart"]
    assert u1.categories == ["c1", "c1", "c2"]
    # purchase: 0 s after the (dropped) view; click: 60 s; cart: 3,540 s
    assert u1.gap_seconds == [0, 60, 3540]
    assert u1.positions == [1, 2, 3] and u1.length == 3 and u1.events_total == 4
    assert u1.last_ts == T0 + dt.timedelta(seconds=3600)
    u3 = got["u3"]
    assert u3.item_ids == ["i5", "i2"] and u3.categories == [None, "c1"]
    assert u3.gap_seconds == [0, 0] and u3.as_of_date == dt.date(2024, 3, 2)
    before = lake.read("gold.user_sequences").orderBy("user_id").collect()
    assert build_sequences(job_args(lake_root, "--as-of", AS_OF, "--max-len", "3")) == 0
    assert lake.read("gold.user_sequences").orderBy("user_id").collect() == before
    # the default window (50) keeps all four of u1's events
    assert build_sequences(job_args(lake_root, "--as-of", AS_OF)) == 0
    u1_all = lake.read("gold.user_sequences").where(F.col("user_id") == "u1").first()
    assert u1_all is not None and u1_all.item_ids == ["i1", "i1", "i2", "i3"]
    assert u1_all.gap_seconds == [0, 0, 60, 3540]


def test_bad_arguments_are_named(lake_root: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert build_sequences(job_args(lake_root)) == 2
    assert "build_sequences needs --as-of" in capsys.readouterr().err
    assert build_sequences(job_args(lake_root, "--as-of", AS_OF, "--max-len", "0")) == 2
    assert "--max-len must be >= 1, got 0" in capsys.readouterr().err
    bad = ["--as-of", AS_OF, "--set", "sequences.event_types=[view, teleport]"]
    assert build_sequences(job_args(lake_root, *bad)) == 2
    assert "unknown event type(s) teleport" in capsys.readouterr().err
