"""Airflow DAGs for ShopperLake: daily ingest → profiles → segments → scores, and a weekly
retraining. Each task is one ``submit.sh`` call, the same entry point engineers run by hand.

Deploy: put this file in Airflow's dags folder, install the `shopperlake` wheel in the Airflow
environment (for the task list only), and set the Airflow Variables
``shopperlake_home`` (checkout with submit.sh and the built venv/archive), ``shopperlake_lake``
(lake root URI), ``shopperlake_source`` and ``shopperlake_input`` (raw files URI, may contain
``{{ ds }}``), ``shopperlake_env`` (default ``cluster``).
"""

from __future__ import annotations

import datetime as dt

from airflow import DAG
from airflow.models import Variable
from airflow.operators.bash import BashOperator

from shopperlake.schedule import Task, daily_tasks, weekly_training_tasks

HOME = Variable.get("shopperlake_home", default_var="/opt/shopperlake")
LAKE = Variable.get("shopperlake_lake", default_var="/data/shopperlake/lake")
ENV = Variable.get("shopperlake_env", default_var="cluster")
SOURCE = Variable.get("shopperlake_source", default_var="custom")
INPUT = Variable.get("shopperlake_input", default_var="/data/raw/events/{{ ds }}")

DEFAULTS = {
    "owner": "shopperlake",
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=10),
    "depends_on_past": True,  # point-in-time jobs: day D after day D-1
}


def _build(dag: DAG, tasks: list[Task]) -> None:
    ops = {
        t.task_id: BashOperator(
            task_id=t.task_id, bash_command=f"cd {HOME} && {t.command(env=ENV)}", dag=dag
        )
        for t in tasks
    }
    for t in tasks:
        for up in t.upstream:
            ops[up] >> ops[t.task_id]


with DAG(
    "shopperlake_daily",
    default_args=DEFAULTS,
    schedule="0 3 * * *",
    start_date=dt.datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["shopperlake"],
) as daily:
    _build(daily, daily_tasks(SOURCE, INPUT, LAKE))

with DAG(
    "shopperlake_weekly_training",
    default_args={**DEFAULTS, "depends_on_past": False},
    schedule="0 5 * * 0",
    start_date=dt.datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["shopperlake"],
) as weekly:
    _build(weekly, weekly_training_tasks(LAKE))
