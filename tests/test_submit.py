"""spark-submit options per environment, the package zip, and submit.sh's argument handling.

Expected options are written out from the YAML values in conf/, not recomputed by the code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shopperlake.core.config import load_config
from shopperlake.core.errors import ConfigError
from shopperlake.core.submit_args import build_package, submit_args

REPO = Path(__file__).resolve().parents[1]
SUBMIT = REPO / "submit.sh"
BASE_CONFS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    "spark.databricks.delta.merge.repartitionBeforeWrite.enabled": "true",
}


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A stand-in repo root with two jars (and a file that is not a jar)."""
    (tmp_path / "jars").mkdir()
    for name in ("delta-storage-3.3.2.jar", "delta-spark_2.12-3.3.2.jar", "README.txt"):
        (tmp_path / "jars" / name).write_text("x")
    return tmp_path


def split(args: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(single-valued options, --conf map); fails on a repeated option."""
    options: dict[str, str] = {}
    confs: dict[str, str] = {}
    assert len(args) % 2 == 0, args
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag == "--conf":
            key, _, val = value.partition("=")
            assert key not in confs, f"--conf {key} given twice"
            confs[key] = val
        else:
            assert flag not in options, f"{flag} given twice"
            options[flag] = value
    return options, confs


def test_local_options(repo: Path) -> None:
    options, confs = split(submit_args(load_config("local"), repo, environ={}))
    assert options == {
        "--master": "local[*]",
        "--jars": f"{repo}/jars/delta-spark_2.12-3.3.2.jar,{repo}/jars/delta-storage-3.3.2.jar",
        "--py-files": f"{repo}/.sl-build/shopperlake.zip",
    }
    assert confs == {
        **BASE_CONFS,
        "spark.pyspark.python": f"{repo}/.venv/bin/python",
        "spark.pyspark.driver.python": f"{repo}/.venv/bin/python",
        "spark.sql.shuffle.partitions": "8",
        "spark.default.parallelism": "4",
        "spark.driver.memory": "6g",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.adaptive.enabled": "true",
    }


def test_cluster_options_have_no_master_and_use_packages(repo: Path) -> None:
    environ = {"SPARK_MASTER_URL": "spark://10.0.0.9:7077"}  # only standalone reads it
    options, confs = split(submit_args(load_config("cluster"), repo, environ=environ))
    assert options == {
        "--packages": "io.delta:delta-spark_2.12:3.3.2",
        "--py-files": f"{repo}/.sl-build/shopperlake.zip",
    }
    assert confs == {
        **BASE_CONFS,
        "spark.sql.shuffle.partitions": "200",
        "spark.sql.adaptive.enabled": "true",
    }


def test_standalone_master_default_and_env_override(repo: Path) -> None:
    cfg = load_config("standalone")
    options, confs = split(submit_args(cfg, repo, environ={}))
    assert options["--master"] == "spark://127.0.0.1:7077"
    assert options["--jars"].split(",") == [
        f"{repo}/jars/delta-spark_2.12-3.3.2.jar",
        f"{repo}/jars/delta-storage-3.3.2.jar",
    ]
    assert "--packages" not in options
    assert confs == {
        **BASE_CONFS,
        "spark.pyspark.python": f"{repo}/.venv/bin/python",
        "spark.pyspark.driver.python": f"{repo}/.venv/bin/python",
        "spark.sql.shuffle.partitions": "8",
        "spark.executor.memory": "2g",
        "spark.executor.cores": "1",
        "spark.cores.max": "2",
        "spark.ui.showConsoleProgress": "false",
    }
    environ = {"SPARK_MASTER_URL": "spark://10.1.2.3:7078"}
    options, _ = split(submit_args(cfg, repo, environ=environ))
    assert options["--master"] == "spark://10.1.2.3:7078"


def test_overrides_reach_the_options(repo: Path) -> None:
    cfg = load_config(
        "cluster",
        [
            "spark.conf.spark.sql.shuffle.partitions=64",
            "spark.submit_conf.spark.eventLog.enabled=true",
            "spark.submit_conf.spark.pyspark.python=./environment/bin/python",
            "spark.master=yarn",
        ],
    )
    options, confs = split(submit_args(cfg, repo, Path("/opt/pkg.zip"), environ={}))
    assert options["--master"] == "yarn"
    assert options["--py-files"] == "/opt/pkg.zip"
    assert confs["spark.sql.shuffle.partitions"] == "64"
    assert confs["spark.eventLog.enabled"] == "true"  # YAML true, Spark's spelling
    assert confs["spark.pyspark.python"] == "./environment/bin/python"


def test_missing_jars_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no Delta jars in .*jars \(spark.jars_dir\)"):
        submit_args(load_config("local"), tmp_path, environ={})


def repo_copy(root: Path) -> Path:
    """What ``pip wheel`` builds from, copied (the conf/sql links stay relative)."""
    for part in ("lib", "conf", "sql"):
        shutil.copytree(REPO / part, root / part, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))  # fmt: skip
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    shutil.copy(REPO / "README.md", root / "README.md")
    return root


def test_package_is_the_pip_wheel_with_conf_and_sql_and_rebuilds_only_on_change(
    tmp_path: Path,
) -> None:
    root = repo_copy(tmp_path / "repo")
    target = tmp_path / "out" / "pkg.zip"
    assert build_package(root, target) is True
    with zipfile.ZipFile(target) as zf:
        names = set(zf.namelist())
        assert zf.read("shopperlake/_conf/base.yaml") == (REPO / "conf/base.yaml").read_bytes()
        assert (
            zf.read("shopperlake/_sql/views/user_tags.sql")
            == (REPO / "sql/views/user_tags.sql").read_bytes()
        )
    assert {"shopperlake/jobs.py", "shopperlake/core/cli.py",
            "shopperlake/_conf/sources/cdnow.yaml"} <= names  # fmt: skip
    assert any(n.endswith(".dist-info/WHEEL") for n in names)  # a wheel, built by pip
    assert not any("__pycache__" in n for n in names)
    assert build_package(root, target) is False
    with (root / "conf" / "base.yaml").open("a") as f:
        f.write("# changed\n")
    assert build_package(root, target) is True
    with zipfile.ZipFile(target) as zf:
        assert zf.read("shopperlake/_conf/base.yaml").endswith(b"# changed\n")


def test_jobs_started_together_build_the_wheel_once(tmp_path: Path) -> None:
    root = repo_copy(tmp_path / "repo")
    target = tmp_path / "out" / "pkg.zip"
    with ThreadPoolExecutor(3) as pool:
        built = list(pool.map(lambda _: build_package(root, target), range(3)))
    assert sorted(built) == [False, False, True]
    assert zipfile.is_zipfile(target)


def test_zipped_package_reads_its_bundled_conf(tmp_path: Path) -> None:
    target = tmp_path / "shopperlake.zip"
    build_package(REPO, target)
    code = (
        "import shopperlake.core.config as c; "
        "print(c.__file__); print(c.load_config('standalone').get('spark.master'))\n"
        "try:\n    c.load_config('nope')\nexcept c.ConfigError as e:\n    print(e)"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("SHOPPERLAKE_CONF_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=True,
    ).stdout.splitlines()
    assert out == [
        f"{target}/shopperlake/core/config.py",
        "spark://127.0.0.1:7077",
        "unknown environment 'nope': no conf/nope.yaml (known: cluster, local, standalone)",
    ]


def run_submit(
    *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(extra_env or {})}
    return subprocess.run(
        [str(SUBMIT), *args], env=env, capture_output=True, text=True, timeout=120, cwd=REPO
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["nope"],
            "submit.sh: error: unknown job 'nope' (jobs: backfill, backtest, build_profiles, "
            "build_return_training_set, build_segments, build_sequences, build_training_set, "
            "detect_anomalies, "
            "erase, forecast, generate, ingest, maintain, query, report, score, score_recommender, "
            "score_returns, score_sasrec, train, train_recommender, train_returns, train_sasrec)",
        ),
        (["../jobs/ingest"], "submit.sh: error: unknown job '../jobs/ingest'"),
        ([], "submit.sh: error: missing job name"),
        (["ingest", "--source", "cdnow", "--env", "mars"], "unknown environment 'mars'"),
        (["ingest", "--env=mars"], "unknown environment 'mars'"),
        (["ingest", "--set", "ingest.nope=1"], "unknown config key 'ingest.nope'"),
        (["ingest", "--env"], "submit.sh: error: --env needs a value"),
    ],
)
def test_submit_sh_bad_input_is_one_line_and_nonzero(args: list[str], message: str) -> None:
    # A spark-submit that must never start: every case fails before it.
    result = run_submit(*args, extra_env={"SPARK_SUBMIT": "/bin/false"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


def test_submit_sh_hands_options_and_job_args_to_spark_submit(tmp_path: Path) -> None:
    record = tmp_path / "argv"
    fake = tmp_path / "spark-submit"
    fake.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {record}\nexit 7\n')
    fake.chmod(0o755)
    result = run_submit(
        "ingest",
        "--source",
        "cdnow",
        "--set",
        "spark.conf.spark.sql.shuffle.partitions=3",
        extra_env={"SPARK_SUBMIT": str(fake)},
    )
    assert result.returncode == 7, result.stderr  # the job's exit status comes back
    argv = record.read_text().splitlines()
    entry = argv.index(f"{REPO}/jobs/ingest.py")
    options, confs = split(argv[:entry])
    assert options["--master"] == "local[*]"
    assert options["--py-files"] == f"{REPO}/.sl-build/shopperlake.zip"
    assert confs["spark.sql.shuffle.partitions"] == "3"
    assert argv[entry + 1 :] == [
        "--source",
        "cdnow",
        "--set",
        "spark.conf.spark.sql.shuffle.partitions=3",
        "--env",
        "local",
    ]
    assert zipfile.is_zipfile(REPO / ".sl-build" / "shopperlake.zip")
