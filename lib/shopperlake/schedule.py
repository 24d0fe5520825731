"""The daily pipeline as data: which job runs with which arguments after which others.

``dags/shopperlake_daily.py`` turns this into an Airflow DAG of BashOperators calling
``submit.sh``; tests check it against the job registry without needing Airflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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


def daily_tasks(source: str, input_uri: str, lake: str) -> list[Task]:
    """Ingest the day's files, then profiles → segments → scores and recommendations."""
    common = ("--lake", lake, "--as-of", AS_OF)
    return [
        Task("ingest", "ingest", ("--source", source, "--input", input_uri, *common)),
        Task("build_profiles", "build_profiles", common, ("ingest",)),
        Task("build_segments", "build_segments", common, ("build_profiles",)),
        Task("score_churn", "score", ("--model", "churn", *common), ("build_segments",)),
        Task("score_propensity", "score", ("--model", "propensity", *common), ("build_profiles",)),
        Task(
            "score_recommender", "score", ("--model", "recommender", *common), ("build_segments",)
        ),
    ]


def weekly_training_tasks(lake: str) -> list[Task]:
    """Rebuild training sets and retrain; promotion keeps a worse model out of scoring."""
    common = ("--lake", lake, "--as-of", AS_OF)
    tasks = []
    for model in ("churn", "propensity"):
        tasks += [
            Task(f"training_set_{model}", "build_training_set", ("--model", model, *common)),
            Task(
                f"train_{model}", "train", ("--model", model, *common), (f"training_set_{model}",)
            ),
        ]
    tasks.append(Task("train_recommender", "train", ("--model", "recommender", *common)))
    return tasks
