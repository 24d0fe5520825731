"""The pipelines as data: which job runs with which arguments; the order comes from the jobs'
declarations (a task runs after every earlier task whose job writes a table its job reads).

``python -m shopperlake.schedule > dags/shopperlake_pipelines.json`` writes the DAGs as JSON
(each task's ``submit.sh`` command and upstream tasks); ``dags/shopperlake_daily.py`` turns
that file into Airflow DAGs of BashOperators, so Airflow parses the DAGs without importing
this package (or Spark). Tests check the tasks against the job registry and the JSON against
this module.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any

from shopperlake.jobs import JOBS


@dataclass(frozen=True)
class Task:
    task_id: str
    job: str
    args: tuple[str, ...]
    upstream: tuple[str, ...] = field(default=())

    def command(self, submit: str = "./submit.sh", env: str = "cluster") -> str:
        return " ".join([submit, self.job, "--env", env, *self.args])


# ``{{ ds }}`` is Airflow's logical date (YYYY-MM-DD): the run for day D sees data up to D.
AS_OF = "{{ ds }}"


def feeds(upstream: str, downstream: str) -> bool:
    """True when job ``upstream`` writes a table (or registry entry) job ``downstream`` reads."""
    writes, reads = JOBS[upstream].writes, JOBS[downstream].reads
    return any(fnmatchcase(r, w) or fnmatchcase(w, r) for w in writes for r in reads)


def wired(tasks: list[Task]) -> list[Task]:
    """``tasks`` in order, each depending on the nearest earlier task of every job that feeds
    it (a job reading its own output, like ingest, does not depend on itself)."""
    out: list[Task] = []
    for task in tasks:
        latest: dict[str, str] = {}
        for earlier in out:
            if earlier.job != task.job and feeds(earlier.job, task.job):
                latest[earlier.job] = earlier.task_id
        out.append(replace(task, upstream=tuple(sorted(latest.values()))))
    return out


def daily_tasks(source: str, input_uri: str, lake: str) -> list[Task]:
    """Ingest the day's files, check the feed and flag anomalous users, then profiles →
    segments → scores and recommendations (without the flagged bots), the sequences and
    SASRec's next items, and the demand forecasts of both levels."""
    common = ("--lake", lake, "--as-of", AS_OF)
    return wired(
        [
            Task("ingest", "ingest", ("--source", source, "--input", input_uri, *common)),
            # before the profiles: users it flags as bots are left out (anomalies.exclude)
            Task("detect_anomalies", "detect_anomalies", ("--source", source, *common)),
            Task("build_profiles", "build_profiles", common),
            Task("build_segments", "build_segments", common),
            Task("score_churn", "score", ("--model", "churn", *common)),
            Task("score_propensity", "score", ("--model", "propensity", *common)),
            Task("score_recommender", "score_recommender", common),
            # the users' latest item events, and SASRec's next items from them (the current
            # version, trained by the weekly DAG)
            Task("build_sequences", "build_sequences", common),
            Task("score_sasrec", "score_sasrec", common),
            # the day's source only: item ids of different sources are different items
            Task(
                "forecast_category",
                "forecast",
                ("--level", "category", "--source", source, *common),
            ),
            Task("forecast_item", "forecast", ("--level", "item", "--source", source, *common)),
        ]
    )


def weekly_training_tasks(lake: str) -> list[Task]:
    """Rebuild training sets and retrain; promotion keeps a worse model out of scoring."""
    common = ("--lake", lake, "--as-of", AS_OF)
    tasks = []
    for model in ("churn", "propensity"):
        tasks += [
            Task(f"training_set_{model}", "build_training_set", ("--model", model, *common)),
            Task(f"train_{model}", "train", ("--model", model, *common)),
        ]
    tasks.append(Task("train_recommender", "train_recommender", common))
    # SASRec on the day's sequences (rebuilt here: the same table the daily DAG writes)
    tasks += [
        Task("build_sequences", "build_sequences", common),
        Task("train_sasrec", "train_sasrec", common),
    ]
    return wired(tasks)


def maintenance_tasks(lake: str) -> list[Task]:
    """Weekly: expire old partitions (config), compact and Z-order, VACUUM at the safe
    retention."""
    return wired([Task("maintain", "maintain", ("--lake", lake, "--as-of", AS_OF))])


def _setting(name: str) -> str:
    """A Jinja expression Airflow renders when a task runs: the ``shopperlake`` macro of
    ``dags/shopperlake_daily.py`` reads Airflow Variable ``shopperlake_<name>``."""
    return "{{ shopperlake('" + name + "', ds) }}"


HOME, LAKE, ENV, SOURCE, INPUT = (_setting(n) for n in ("home", "lake", "env", "source", "input"))
# dag_id, cron schedule (UTC), tasks, depends_on_past
DAGS: tuple[tuple[str, str, Callable[[], list[Task]], bool], ...] = (
    ("shopperlake_daily", "0 3 * * *", lambda: daily_tasks(SOURCE, INPUT, LAKE), True),
    ("shopperlake_weekly_training", "0 5 * * 0", lambda: weekly_training_tasks(LAKE), False),
    # Saturday, away from the daily chain and the Sunday retraining
    ("shopperlake_weekly_maintenance", "0 6 * * 6", lambda: maintenance_tasks(LAKE), False),
)


def airflow_spec() -> dict[str, Any]:
    """The DAGs as ``dags/shopperlake_pipelines.json`` holds them: per DAG its id, schedule,
    ``depends_on_past`` and tasks (id, bash command run from the checkout, upstream ids)."""
    return {
        "generated_by": "python -m shopperlake.schedule > dags/shopperlake_pipelines.json",
        "dags": [
            {
                "dag_id": dag_id,
                "schedule": schedule,
                "depends_on_past": depends_on_past,
                "tasks": [
                    {
                        "task_id": t.task_id,
                        "bash_command": f"cd {HOME} && {t.command(env=ENV)}",
                        "upstream": list(t.upstream),
                    }
                    for t in tasks()
                ],
            }
            for dag_id, schedule, tasks, depends_on_past in DAGS
        ],
    }


if __name__ == "__main__":
    json.dump(airflow_spec(), sys.stdout, indent=2)
    sys.stdout.write("\n")
