"""Airflow DAGs for ShopperLake: daily ingest → profiles → segments → scores, a weekly
retraining and a weekly table maintenance. Each task is one ``submit.sh`` call, the same entry
point engineers run by hand.

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

from shopperlake.schedule import Task, daily_tasks, maintenance_tasks, weekly_training_tasks

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


def _dag(dag_id: str, schedule: str, tasks: list[Task], depends_on_past: bool) -> DAG:
    """One DAG of BashOperators running ``submit.sh``, wired as ``tasks`` say."""
    with DAG(
        dag_id,
        default_args={**DEFAULTS, "depends_on_past": depends_on_past},
        schedule=schedule,
        start_date=dt.datetime(2024, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["shopperlake"],
    ) as dag:
        ops = {
            t.task_id: BashOperator(
                task_id=t.task_id, bash_command=f"cd {HOME} && {t.command(env=ENV)}"
            )
            for t in tasks
        }
        for t in tasks:
            for up in t.upstream:
                ops[up] >> ops[t.task_id]
    return dag


daily = _dag("shopperlake_daily", "0 3 * * *", daily_tasks(SOURCE, INPUT, LAKE), True)
weekly = _dag("shopperlake_weekly_training", "0 5 * * 0", weekly_training_tasks(LAKE), False)
# Saturday, away from the daily chain and the Sunday retraining
maintenance = _dag("shopperlake_weekly_maintenance", "0 6 * * 6", maintenance_tasks(LAKE), False)
