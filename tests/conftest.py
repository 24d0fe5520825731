"""Shared fixtures: one real local SparkSession with Delta for the whole run, a fresh lake
folder per test."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
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
