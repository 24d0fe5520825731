"""The MovieLens source (conf/sources/movielens.yaml) on a hand-written file in RecBole's
atomic format: ratings become `review` events with their stars, a bad line goes to
quarantine, and ratings in the same second keep the sequences' tie rule (event id order)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shopperlake.core.lake import Lake
from shopperlake.ingest.job import main as ingest
from shopperlake.sequences.job import main as build_sequences
from tests.conftest import job_args

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
# user 1: movie 50 first; 10 and 2 in the same second (ids ml-1-10 < ml-1-2); then 7
LINES = [
    "1\t50\t5\t881250900",
    "1\t2\t3\t881250949",
    "1\t10\t4\t881250949",
    "1\t7\t1\t881251000",
    "2\t50\t2\t881250000",
    "2\t7\tx\t881250001",  # stars not a number: quarantined
]


def test_movielens_ratings_become_review_events(
    spark: SparkSession, lake: Lake, lake_root: str, tmp_path: Path
) -> None:
    raw = tmp_path / "ml.inter"
    raw.write_text("\n".join([HEADER, *LINES]) + "\n")
    args = ["--source", "movielens", "--input", str(raw), "--as-of", "1997-12-05"]
    assert ingest(job_args(lake_root, *args)) == 0
    events = {r["event_id"]: r for r in lake.read("bronze.events").collect()}
    assert sorted(events) == ["ml-1-10", "ml-1-2", "ml-1-50", "ml-1-7", "ml-2-50"]
    e = events["ml-1-10"]
    assert (e["user_id"], e["item_id"], e["event_type"], e["rating"]) == ("1", "10", "review", 4)
    # 881250949 s after the epoch, by hand: 1997-12-04 15:55:49 UTC
    assert e["ts"].replace(tzinfo=None) == dt.datetime(1997, 12, 4, 15, 55, 49)
    assert events["ml-2-50"]["rating"] == 2
    bad = lake.read("bronze.quarantine").where(F.col("entity") == "events").collect()
    assert len(bad) == 1 and "rating" in bad[0]["reason"]

    # ingesting the same file again adds nothing
    assert ingest(job_args(lake_root, *args)) == 0
    assert lake.read("bronze.events").count() == 5

    assert build_sequences(job_args(lake_root, "--as-of", "1997-12-05")) == 0
    seqs = {r["user_id"]: r for r in lake.read("gold.user_sequences").collect()}
    assert seqs["1"]["item_ids"] == ["50", "10", "2", "7"]
    assert seqs["1"]["event_types"] == ["review"] * 4
    assert "2" not in seqs  # one valid rating: fewer than sequences.min_events (2)
