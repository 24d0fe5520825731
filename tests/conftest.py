"""Shared fixtures: one real local SparkSession with Delta for the whole run, a fresh lake
folder per test."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from shopperlake.core.config import load_config
from shopperlake.core.lake import Lake, load_catalog
from shopperlake.core.session import build_session

TEST_OVERRIDES = [
    "spark.conf.spark.ui.enabled=false",
    "spark.conf.spark.sql.shuffle.partitions=2",
    "spark.conf.spark.default.parallelism=2",
    "spark.conf.spark.driver.memory=3g",
    "spark.conf.spark.databricks.delta.snapshotPartitions=2",
    "spark.conf.spark.sql.sources.parallelPartitionDiscovery.parallelism=2",
]


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = build_session(load_config("local", TEST_OVERRIDES), "shopperlake-tests")
    yield session
    session.stop()


@pytest.fixture()
def lake_root(tmp_path: Path) -> str:
    return str(tmp_path / "lake")


@pytest.fixture()
def lake(spark: SparkSession, lake_root: str) -> Lake:
    return Lake(spark, lake_root, load_catalog())


def job_args(lake_root: str, *args: str) -> list[str]:
    """Common flags for running a job in-process against the test lake."""
    return ["--lake", lake_root, "--log-level", "WARNING", *TEST_SETS, *args]


TEST_SETS = [f"--set={o}" for o in TEST_OVERRIDES]


def split_by_day(raw: Path, out: Path, days: Sequence[dt.date]) -> dict[str, Counter[str]]:
    """A generated dataset (``generate --output raw``) as daily deliveries: ``out/history``
    holds the events before ``days[0]``, ``out/<day>`` each day's events, every folder the
    items and users. Returns the events per user of each day's folder (counted here, from the
    files). Generate with ``generate.malformed_rate=0``: every line must be a valid event."""
    keys = [d.isoformat() for d in days]
    lines: dict[str, list[str]] = {"history": [], **{k: [] for k in keys}}
    users: dict[str, Counter[str]] = {k: Counter() for k in keys}
    for part in sorted((raw / "events").glob("part-*")):
        for line in part.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            day = str(event["ts"])[:10]
            key = day if day in users else "history"
            lines[key].append(line)
            if key in users:
                users[key][event["user_id"]] += 1
    for key, rows in lines.items():
        (out / key / "events").mkdir(parents=True)
        (out / key / "events" / "part-0.txt").write_text("\n".join(rows) + "\n", "utf-8")
        for entity in ("items", "users"):
            shutil.copytree(raw / entity, out / key / entity)
    return users
