"""The pipelines as data: which job runs with which arguments; the order comes from the jobs'
declarations (a task runs after every earlier task whose job writes a table its job reads).

``dags/shopperlake_daily.py`` turns this into Airflow DAGs of BashOperators calling
``submit.sh``; tests check it against the job registry without needing Airflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase

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
    segments → scores and recommendations (without the flagged bots), and the demand
    forecasts of both levels."""
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
    return wired(tasks)


def maintenance_tasks(lake: str) -> list[Task]:
    """Weekly: expire old partitions (config), compact and Z-order, VACUUM at the safe
    retention."""
    return wired([Task("maintain", "maintain", ("--lake", lake, "--as-of", AS_OF))])
