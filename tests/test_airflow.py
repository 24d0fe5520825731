"""The DAGs in a real Airflow 3 (``make airflow``: its own venv in ``.airflow/venv``).

They parse without import errors and without reading a Variable at parse time, a task renders
its command from the Variables, and ``airflow dags test`` runs the daily DAG for two
consecutive days on a small synthetic lake, every task through ``submit.sh``: the second day
reads what the first day wrote. The models the daily scores need are trained beforehand, in
this process, on the history before the first day (what the weekly DAG would have done).
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession

from shopperlake.core.config import packaged
from shopperlake.core.lake import Lake, load_catalog
from shopperlake.jobs import run
from shopperlake.schedule import daily_tasks
from tests.conftest import job_args, split_by_day

REPO = Path(__file__).resolve().parents[1]
AIRFLOW = REPO / ".airflow" / "venv" / "bin" / "airflow"
DAG_FILE = REPO / "dags" / "shopperlake_daily.py"
pytestmark = pytest.mark.airflow
START, DAYS = dt.date(2024, 1, 1), 100
DAY1, DAY2 = dt.date(2024, 4, 8), dt.date(2024, 4, 9)  # the generated period's last two days
HISTORY_END = DAY1 - dt.timedelta(days=1)
# small models: the scores only need a registered version (test_churn_e2e checks quality)
MODELS = {
    # a small shop's categories sell far fewer than the default 1,000 units; two cheap methods
    "forecast": {"levels": {"category": {"min_units": 20}, "item": {"top_n": 30}},
                 "methods": ["seasonal_naive", "window_average"], "ensemble": False},
    "models": {
        "churn": {"horizon_days": 30, "lookback_days": 45, "dnn": {"epochs": 2},
                  "gbt_max_iter": 5, "importance_rows": 500},
        "propensity": {"horizon_days": 14, "lookback_days": 30, "dnn": {"epochs": 2},
                       "gbt_max_iter": 5, "importance_rows": 500},
    },
}  # fmt: skip
# every submit.sh of the DAG starts its own Spark: small, like the test session's
SMALL_SPARK = {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2",
               "spark.default.parallelism": "2", "spark.driver.memory": "2g"}  # fmt: skip
CUTOFFS = {"churn": "2024-01-23,2024-02-07,2024-03-08",  # test cutoff = 04-07 - 30 days
           "propensity": "2024-02-25,2024-03-10,2024-03-24"}  # fmt: skip


def airflow(env: dict[str, str], *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([str(AIRFLOW), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)  # fmt: skip
    assert done.returncode == 0, f"airflow {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def json_lines(stdout: str) -> list[dict[str, object]]:
    """The JSON list the CLI printed (its log warnings share stdout); [] for "No data found"."""
    rows = [line for line in stdout.splitlines() if line.startswith("[")]
    return json.loads(rows[-1]) if rows else []


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """AIRFLOW_HOME with a fresh SQLite metadata DB; the repo's dags/ folder; the
    ``airflowtest`` config env (local + small models) in a config overlay folder."""
    assert AIRFLOW.is_file(), "no Airflow venv: run `make airflow`"
    home = tmp_path_factory.mktemp("airflow")
    conf = home / "conf"
    conf.mkdir()
    local = yaml.safe_load(packaged("_conf", "local.yaml").read_text(encoding="utf-8")) or {}
    local["spark"]["conf"].update(SMALL_SPARK)
    (conf / "airflowtest.yaml").write_text(yaml.safe_dump({**local, **MODELS}), encoding="utf-8")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "SHOPPERLAKE_CONF_DIR": str(conf),
    }
    airflow(env, "db", "migrate")
    return env


def test_the_dags_parse_without_reading_variables(airflow_env: dict[str, str]) -> None:
    listed = airflow(airflow_env, "dags", "list", "--local", "--output", "json")
    ids = {d["dag_id"] for d in json_lines(listed.stdout)}
    assert ids == {"shopperlake_daily", "shopperlake_weekly_training",
                   "shopperlake_weekly_maintenance"}  # fmt: skip
    errors = airflow(airflow_env, "dags", "list-import-errors", "--local", "--output", "json")
    assert not json_lines(errors.stdout), errors.stdout
    # no Variable lookup outside a function body: the scheduler parses the file often
    tree = ast.parse(DAG_FILE.read_text(encoding="utf-8"))
    top = [n for n in tree.body if not isinstance(n, ast.FunctionDef)]
    calls = [c for n in top for c in ast.walk(n) if isinstance(c, ast.Attribute)]
    assert not [c for c in calls if c.attr == "get" and getattr(c.value, "id", "") == "Variable"]


def test_a_task_renders_its_command_from_the_variables(airflow_env: dict[str, str]) -> None:
    env = {**airflow_env, "AIRFLOW_VAR_SHOPPERLAKE_LAKE": "/lakes/one",
           "AIRFLOW_VAR_SHOPPERLAKE_INPUT": "/raw/{{ ds }}/x"}  # fmt: skip
    done = airflow(env, "tasks", "render", "shopperlake_daily", "ingest", "2024-05-06")
    assert ("./submit.sh ingest --env cluster --source custom --input /raw/2024-05-06/x "
            "--lake /lakes/one --as-of 2024-05-06") in done.stdout  # fmt: skip
    assert "cd /opt/shopperlake &&" in done.stdout


@pytest.mark.slow
def test_two_days_of_the_daily_dag(
    airflow_env: dict[str, str], spark: SparkSession, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("SHOPPERLAKE_CONF_DIR", airflow_env["SHOPPERLAKE_CONF_DIR"])
    root, raw, days = str(tmp_path / "lake"), tmp_path / "generated", tmp_path / "raw"
    common = ["--env", "airflowtest"]
    # no malformed lines: every line of a day's file must reach bronze.events (quarantine
    # has its own tests)
    gen = ["--users", "600", "--items", "120", "--days", str(DAYS), "--seed", "5",
           "--start-date", str(START), "--output", str(raw),
           "--set=generate.malformed_rate=0.0"]  # fmt: skip
    assert run("generate", job_args(root, *common, *gen), spark) == 0
    by_user = split_by_day(raw, days, [DAY1, DAY2])
    history = ["--source", "synthetic", "--as-of", str(HISTORY_END)]
    assert run("ingest", job_args(root, *common, *history, "--input", str(days / "history")),
               spark) == 0  # fmt: skip
    before = ["--as-of", str(HISTORY_END), *common]
    for model in ("churn", "propensity"):
        args = ["--model", model, *before]
        assert run("build_training_set", job_args(root, *args, "--cutoffs", CUTOFFS[model]),
                   spark) == 0  # fmt: skip
        assert run("train", job_args(root, *args), spark) == 0
    assert run("train_recommender", job_args(root, *before), spark) == 0
    assert run("build_sequences", job_args(root, *before), spark) == 0
    assert run("train", job_args(root, "--model", "sasrec", "--epochs", "2", *before),
               spark) == 0  # fmt: skip

    env = {**airflow_env, "AIRFLOW_VAR_SHOPPERLAKE_HOME": str(REPO),
           "AIRFLOW_VAR_SHOPPERLAKE_LAKE": root, "AIRFLOW_VAR_SHOPPERLAKE_ENV": "airflowtest",
           "AIRFLOW_VAR_SHOPPERLAKE_SOURCE": "synthetic",
           "AIRFLOW_VAR_SHOPPERLAKE_INPUT": str(days / "{{ ds }}")}  # fmt: skip
    for day in (DAY1, DAY2):
        # a failing task would wait for its retries (10 minutes each): fail the test first
        airflow(env, "dags", "test", "shopperlake_daily", str(day), timeout=1200)

    lake = Lake(spark, root, load_catalog())
    runs = lake.read("meta.runs").where("as_of >= DATE'2024-04-08'").collect()
    jobs = [t.job for t in daily_tasks("s", "i", "l")]
    for day in (DAY1, DAY2):
        done = Counter((r.job, r.status) for r in runs if r.as_of == day)
        # score runs twice (churn, propensity), forecast twice (item, category)
        assert done == Counter((j, "success") for j in jobs), (day, done)
    # each day's events arrived through that day's ingest, all of them
    events = lake.read("bronze.events")
    for day in (DAY1, DAY2):
        got = Counter(r.user_id for r in events.where(f"event_date = DATE'{day}'").collect())
        assert got == by_user[str(day)]
    # the second day read the first: a user active on DAY1 only was last seen 1 day before
    only_first = set(by_user[str(DAY1)]) - set(by_user[str(DAY2)])
    profiles = lake.read("gold.user_profiles").where(f"as_of_date = DATE'{DAY2}'")
    seen = {r.user_id: r.days_since_last_event for r in profiles.collect()}
    assert only_first and all(seen[u] == 1 for u in only_first if u in seen)
    assert len([u for u in only_first if u in seen]) >= 0.9 * len(only_first)
    recs = lake.read("gold.recommendations")
    assert {r[0] for r in recs.select("as_of_date").distinct().collect()} >= {DAY1, DAY2}
    nexts = lake.read("gold.next_item_recommendations")
    assert {r[0] for r in nexts.select("as_of_date").distinct().collect()} >= {DAY1, DAY2}
