"""Airflow DAGs for ShopperLake: daily ingest → anomalies → profiles → segments → scores, a
weekly retraining and a weekly table maintenance. Each task is one ``submit.sh`` call, the same
entry point engineers run by hand. Written for Airflow 3 (``make airflow`` installs 3.3 in its
own venv; ``make test-airflow`` runs the daily DAG there for two days on a small lake).

The tasks come from ``shopperlake_pipelines.json`` beside this file, generated from the job
declarations (``python -m shopperlake.schedule > dags/shopperlake_pipelines.json``): parsing
this file imports neither ShopperLake nor Spark.

Deploy: put both files in Airflow's dags folder and set the Airflow Variables
``shopperlake_home`` (checkout with submit.sh and the built venv/archive), ``shopperlake_lake``
(lake root URI), ``shopperlake_source`` and ``shopperlake_input`` (raw files URI, may contain
``{{ ds }}``), ``shopperlake_env`` (default ``cluster``). They are read when a task renders its
command, never when the scheduler parses this file.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Variable

SPEC = Path(__file__).with_name("shopperlake_pipelines.json")
SETTINGS = {
    "home": "/opt/shopperlake",
    "lake": "/data/shopperlake/lake",
    "env": "cluster",
    "source": "custom",
    "input": "/data/raw/events/{{ ds }}",
}
DEFAULTS = {
    "owner": "shopperlake",
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=10),
}


def shopperlake(name: str, ds: str | None = None) -> str:
    """Airflow Variable ``shopperlake_<name>`` (default: ``SETTINGS``), read when a task
    renders its command; ``{{ ds }}`` in it becomes the run's date."""
    value = str(Variable.get(f"shopperlake_{name}", default=SETTINGS[name]))
    return value.replace("{{ ds }}", ds) if ds is not None else value


def build(spec: dict) -> DAG:
    """One DAG of BashOperators running ``submit.sh``, wired as the spec says."""
    with DAG(
        spec["dag_id"],
        # point-in-time jobs: day D after day D-1 in the daily chain
        default_args={**DEFAULTS, "depends_on_past": spec["depends_on_past"]},
        schedule=spec["schedule"],
        start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        catchup=False,
        max_active_runs=1,
        tags=["shopperlake"],
        user_defined_macros={"shopperlake": shopperlake},
    ) as dag:
        ops = {
            t["task_id"]: BashOperator(task_id=t["task_id"], bash_command=t["bash_command"])
            for t in spec["tasks"]
        }
        for t in spec["tasks"]:
            for up in t["upstream"]:
                ops[up] >> ops[t["task_id"]]
    return dag


for _spec in json.loads(SPEC.read_text(encoding="utf-8"))["dags"]:
    globals()[_spec["dag_id"]] = build(_spec)
