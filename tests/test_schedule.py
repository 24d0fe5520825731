"""The Airflow pipeline definition refers to real jobs with arguments they accept."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from shopperlake.core.cli import base_parser
from shopperlake.jobs import JOBS
from shopperlake.schedule import daily_tasks, maintenance_tasks, weekly_training_tasks

REPO = Path(__file__).resolve().parents[1]


def parser_for(job: str) -> argparse.ArgumentParser:
    parser = base_parser(job, "")
    JOBS[job].add_args(parser)
    return parser


@pytest.mark.parametrize(
    "task",
    daily_tasks("custom", "s3a://raw/{{ ds }}", "s3a://lake")
    + weekly_training_tasks("s3a://lake")
    + maintenance_tasks("s3a://lake"),
    ids=lambda t: t.task_id,
)
def test_every_task_is_a_job_whose_parser_accepts_its_args(task) -> None:
    assert (REPO / "jobs" / f"{task.job}.py").is_file()
    args = parser_for(task.job).parse_args([a.replace("{{ ds }}", "2024-06-30") for a in task.args])
    assert args.lake == "s3a://lake"
    assert task.command().startswith(f"./submit.sh {task.job} --env cluster ")


def test_dependencies_point_at_earlier_tasks() -> None:
    for tasks in (daily_tasks("custom", "x", "l"), weekly_training_tasks("l")):
        seen: set[str] = set()
        for t in tasks:
            assert set(t.upstream) <= seen, t
            seen.add(t.task_id)
    daily = {t.task_id: t for t in daily_tasks("custom", "x", "l")}
    # read off the declarations: profiles read bronze (ingest), segments read profiles, the
    # churn score reads profiles and segments, training sets read what profiles read
    # and the flagged bots (gold.user_anomalies) they leave out
    assert daily["detect_anomalies"].upstream == ("ingest",)
    assert daily["build_profiles"].upstream == ("detect_anomalies", "ingest")
    assert daily["build_segments"].upstream == ("build_profiles",)
    assert daily["score_churn"].upstream == (
        "build_profiles", "build_segments", "detect_anomalies", "ingest",
    )  # fmt: skip
    # forecasts read bronze events and items only: they wait for the ingest, nothing else
    assert daily["forecast_category"].upstream == ("ingest",)
    assert daily["forecast_item"].upstream == ("ingest",)
    # and forecast the day's source only (item ids of two sources are different items)
    assert daily["forecast_item"].args[:4] == ("--level", "item", "--source", "custom")
    # sequences read the events and leave out the flagged bots; SASRec scores read them
    assert daily["build_sequences"].upstream == ("detect_anomalies", "ingest")
    assert daily["score_sasrec"].upstream == ("build_sequences",)
    weekly = {t.task_id: t for t in weekly_training_tasks("l")}
    # SASRec reads the sequences and gold.model_metrics, which the trainings before it write
    assert weekly["train_sasrec"].upstream == (
        "build_sequences", "train_propensity", "train_recommender",
    )  # fmt: skip
    assert weekly["train_churn"].upstream == ("training_set_churn",)
    assert weekly["train_propensity"].upstream == ("training_set_propensity",)


def test_the_dags_json_is_generated_from_the_declarations() -> None:
    """dags/shopperlake_pipelines.json (what Airflow reads) is this module's current output."""
    import json

    from shopperlake.schedule import airflow_spec

    committed = json.loads((REPO / "dags" / "shopperlake_pipelines.json").read_text("utf-8"))
    assert (
        committed == airflow_spec()
    ), "regenerate: python -m shopperlake.schedule > dags/shopperlake_pipelines.json"
    daily = committed["dags"][0]
    assert daily["dag_id"] == "shopperlake_daily" and daily["depends_on_past"] is True
    ingest = daily["tasks"][0]["bash_command"]
    assert ingest == (
        "cd {{ shopperlake('home', ds) }} && ./submit.sh ingest --env {{ shopperlake('env', ds) }}"
        " --source {{ shopperlake('source', ds) }} --input {{ shopperlake('input', ds) }}"
        " --lake {{ shopperlake('lake', ds) }} --as-of {{ ds }}"
    )
