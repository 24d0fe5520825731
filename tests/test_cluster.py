"""A real Spark standalone cluster on 127.0.0.1 (one master, one worker): ``submit.sh ingest
--env standalone`` runs CDNOW on it, and the Delta output is checked from a local session."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F

from shopperlake.core.lake import Lake, load_catalog

pytestmark = pytest.mark.cluster
log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
# Published figures of the CDNOW master file (Fader & Hardie), also checked against the raw file.
CDNOW_ROWS = 69_659
CDNOW_USERS = 23_570
START_TIMEOUT_S = 120
JOB_TIMEOUT_S = 420


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spark_home() -> Path:
    spec = importlib.util.find_spec("pyspark")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent


_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy


def master_json(webui_port: int) -> dict[str, Any]:
    with _LOOPBACK.open(f"http://127.0.0.1:{webui_port}/json/", timeout=5) as resp:
        data: dict[str, Any] = json.load(resp)
        return data


@dataclass
class Cluster:
    url: str
    webui_port: int
    worker_dir: Path
    env: dict[str, str]

    def state(self) -> dict[str, Any]:
        return master_json(self.webui_port)


def _tail(path: Path, lines: int = 30) -> str:
    if not path.is_file():
        return f"(no {path.name})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a daemon and everything it started (executors): its whole process group."""
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            log.warning("pid %d ignored signal %s", proc.pid, sig)


@pytest.fixture()
def standalone_cluster(tmp_path: Path) -> Iterator[Cluster]:
    home = spark_home()
    logs = tmp_path / "logs"
    logs.mkdir()
    worker_dir = tmp_path / "work"
    worker_dir.mkdir()
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_WORKER_DIR": str(worker_dir),
        "SPARK_CONF_DIR": str(tmp_path / "spark-conf"),  # empty: no stray spark-defaults
    }
    (tmp_path / "spark-conf").mkdir()
    env.pop("SPARK_MASTER_URL", None)
    port, webui, worker_webui = free_port(), free_port(), free_port()
    url = f"spark://127.0.0.1:{port}"
    spark_class = str(home / "bin" / "spark-class")
    commands = {
        "master": [
            spark_class,
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(webui),
        ],
        "worker": [
            spark_class,
            "org.apache.spark.deploy.worker.Worker",
            url,
            "--cores",
            "2",
            "--memory",
            "2g",
            "--host",
            "127.0.0.1",
            "--webui-port",
            str(worker_webui),
        ],
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, cmd in commands.items():
            with (logs / f"{name}.log").open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            for name, proc in zip(commands, procs, strict=True):
                if proc.poll() is not None:
                    tail = _tail(logs / f"{name}.log")
                    pytest.fail(f"{name} exited with {proc.returncode}:\n{tail}")
            try:
                workers = master_json(webui).get("workers", [])
            except OSError:
                workers = []
            if any(w.get("state") == "ALIVE" for w in workers):
                break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"no worker registered within {START_TIMEOUT_S}s:\n"
                    f"{_tail(logs / 'master.log')}\n{_tail(logs / 'worker.log')}"
                )
            time.sleep(1)
        log.info("standalone cluster up at %s", url)
        yield Cluster(url=url, webui_port=webui, worker_dir=worker_dir, env=env)
    finally:
        for proc in reversed(procs):
            _stop(proc)


def raw_cdnow() -> list[list[str]]:
    """CDNOW lines split on whitespace, read with plain Python (not the ingest code)."""
    spec = importlib.util.find_spec("lifetimes")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "CDNOW_master.txt"
    lines = path.read_text().splitlines()
    assert lines[0].split() == ["customer_id", "date", "number_of_cds", "dollar_value"]
    return [line.split() for line in lines[1:] if line.strip()]


@pytest.mark.timeout(START_TIMEOUT_S + JOB_TIMEOUT_S + 120)
def test_ingest_runs_on_a_standalone_cluster(
    standalone_cluster: Cluster, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    raw = raw_cdnow()
    assert len(raw) == CDNOW_ROWS
    assert len({fields[0] for fields in raw}) == CDNOW_USERS

    lake_root = tmp_path / "lake"
    env = {**standalone_cluster.env, "SPARK_MASTER_URL": standalone_cluster.url}
    env.pop("SPARK_SUBMIT", None)  # the cluster's own Spark (SPARK_HOME) submits
    job_log = tmp_path / "job.log"
    with job_log.open("wb") as out:
        result = subprocess.run(
            [
                str(REPO / "submit.sh"),
                "ingest",
                "--env",
                "standalone",
                "--source",
                "cdnow",
                "--lake",
                str(lake_root),
                "--set",
                "spark.conf.spark.ui.enabled=false",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=JOB_TIMEOUT_S,
            cwd=tmp_path,
        )
    assert result.returncode == 0, _tail(job_log, 60)

    # The app ran on the cluster: the master lists it as finished, the worker ran its executor.
    deadline = time.monotonic() + 30
    while True:
        apps = standalone_cluster.state().get("completedapps", [])
        if apps or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert [(a["name"], a["state"]) for a in apps] == [("shopperlake-ingest", "FINISHED")]
    app_dirs = [p.name for p in standalone_cluster.worker_dir.iterdir()]
    assert app_dirs == [apps[0]["id"]]
    executor_logs = list((standalone_cluster.worker_dir / app_dirs[0]).glob("*/stderr"))
    assert any("Finished task" in p.read_text(errors="replace") for p in executor_logs)

    # Only now start the local session that reads the output: the two cores stay with the job.
    spark: SparkSession = request.getfixturevalue("spark")
    lake = Lake(spark, str(lake_root), load_catalog())
    events = lake.read("bronze.events")
    assert events.count() == CDNOW_ROWS
    assert events.select("user_id").distinct().count() == CDNOW_USERS
    assert not lake.exists("bronze.quarantine") or lake.read("bronze.quarantine").count() == 0

    # Whole rows for the first customers, against the raw lines parsed here.
    first = {"00001", "00002", "00003"}
    expected = sorted(
        (f[0], f[1], int(f[2]), float(f[3]) / float(f[2])) for f in raw if f[0] in first
    )
    got = sorted(
        (r.user_id, r.day, r.quantity, r.price)
        for r in events.where(F.col("user_id").isin(*first))
        .select("user_id", F.date_format("ts", "yyyyMMdd").alias("day"), "quantity", "price")
        .collect()
    )
    assert got == expected

    runs = lake.read("meta.runs").select(
        "job", "env", "status", "rows_read", "rows_written", "rows_quarantined"
    )
    assert runs.collect() == [
        Row(
            job="ingest",
            env="standalone",
            status="success",
            rows_read=CDNOW_ROWS,
            rows_written=CDNOW_ROWS,
            rows_quarantined=0,
        )
    ]
