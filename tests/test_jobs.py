"""The job registry: one declaration per job, entry files that match it, the lake refusing a
table a job did not declare, and missing snapshots failing with the command that builds them."""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from shopperlake.core.cli import JobContext
from shopperlake.core.config import load_config
from shopperlake.core.errors import InputError, LakeError
from shopperlake.core.lake import Lake
from shopperlake.core.runlog import RunRecorder
from shopperlake.jobs import JOBS, listing, mermaid, resolve
from shopperlake.profiles.snapshots import ensure_profiles
from tests.conftest import job_args

REPO = Path(__file__).resolve().parents[1]


def test_every_job_has_an_entry_file_of_at_most_8_lines_and_no_file_is_orphaned() -> None:
    files = {p.stem for p in (REPO / "jobs").glob("*.py")}
    # backfill runs registered jobs (the daily chain per day); it is not one itself
    assert files == set(JOBS) | {"backfill"}
    for name in JOBS:
        text = (REPO / "jobs" / f"{name}.py").read_text()
        assert len(text.splitlines()) <= 8
        assert f'run("{name}")' in text


def test_returns_model_flag_names_the_return_jobs_and_other_models_stay() -> None:
    for name, target in (("build_training_set", "build_return_training_set"),
                         ("train", "train_returns"), ("score", "score_returns")):  # fmt: skip
        assert resolve(name, ["--model", "returns", "--as-of", "2011-12-08"]).name == target
        assert resolve(name, ["--model", "churn"]).name == name


def test_every_demo_step_parses_for_the_job_it_runs() -> None:
    """The demo calls jobs in-process as submit.sh would: an argument its job does not take
    (a flag of an aliased job passed to the base job) fails here, not 20 minutes into a demo."""
    from shopperlake.core.cli import base_parser
    from shopperlake.demo import steps

    args = argparse.Namespace(lake="lake", env="local", users=10, items=5, days=30,
                              start_date="2024-01-01")  # fmt: skip
    names = []
    for step in steps(args, "/tmp/raw"):
        job = resolve(step.job, step.argv)
        parser = base_parser(job.name, job.description)
        job.add_args(parser)
        parser.parse_args(step.argv)  # exits (SystemExit) on an unknown argument
        names.append(job.name)
    assert {"build_return_training_set", "train_returns", "score_returns"} <= set(names)


def test_recommender_model_flag_is_an_alias_of_its_own_jobs() -> None:
    assert resolve("train", ["--model", "recommender", "--as-of", "2024-01-01"]).name == (
        "train_recommender"
    )
    assert resolve("score", ["--as-of", "2024-01-01", "--model=recommender"]).name == (
        "score_recommender"
    )
    assert resolve("train", ["--model", "churn"]).name == "train"
    assert resolve("score", ["--set", "x=recommender", "--model", "churn"]).name == "score"


def test_submit_list_prints_every_job_with_its_inputs_and_outputs() -> None:
    out = subprocess.run(
        [str(REPO / "submit.sh"), "--list"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == listing()
    for name in JOBS:
        assert f"\n{name}: " in f"\n{out}"
    block = out.split("\nbuild_segments: ")[1].split("\n")
    assert block[1].strip() == "reads:  gold.user_profiles"
    assert block[2].strip() == (
        "writes: gold.user_segments, gold.segment_summary, gold.segment_centroids"
    )


def test_docs_data_flow_is_the_generated_one() -> None:
    doc = (REPO / "docs" / "jobs.md").read_text()
    assert mermaid() in doc, "docs/jobs.md is stale: paste `python -m shopperlake.jobs --mermaid`"


def test_the_lake_refuses_tables_the_running_job_did_not_declare(
    spark: SparkSession, lake: Lake
) -> None:
    lake.declared = ("some_job", frozenset({"bronze.items"}), frozenset({"gold.*_scores"}))
    try:
        lake.read("bronze.items", required=False)  # declared read
        lake.create("gold.churn_scores")  # declared by pattern
        with pytest.raises(LakeError, match=r"job 'some_job' reads bronze.events without"):
            lake.read("bronze.events", required=False)
        with pytest.raises(LakeError, match=r"job 'some_job' writes bronze.items without"):
            lake.create("bronze.items")
        lake.create("meta.runs")  # the run log is everyone's
    finally:
        lake.declared = None


def test_a_missing_snapshot_is_built_only_by_a_job_that_declares_it(
    spark: SparkSession, lake: Lake
) -> None:
    run = RunRecorder(job="x", params={}, env="local", as_of=None)
    ctx = JobContext(
        args=argparse.Namespace(), cfg=load_config("local"), spark=spark, lake=lake, run=run,
        as_of=None,
    )  # fmt: skip
    with pytest.raises(InputError) as err:
        ensure_profiles(ctx, dt.date(2024, 3, 31))
    assert str(err.value) == (
        "no gold.user_profiles snapshot for 2024-03-31: build it first with "
        "./submit.sh build_profiles --as-of 2024-03-31"
    )
    assert JOBS["score"].builds == () and JOBS["score_recommender"].builds == ()
    assert JOBS["build_training_set"].builds == ("gold.user_profiles",)


def test_a_missing_input_table_names_the_job_that_builds_it(
    spark: SparkSession, lake_root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # train reads gold.training_sets, which only build_training_set writes
    assert JOBS["train"].main(job_args(lake_root, "--model", "churn")) != 0
    err = capsys.readouterr().err
    assert "table 'gold.training_sets' does not exist" in err
    assert err.strip().endswith("build it with ./submit.sh build_training_set")
