"""The one Spark session factory: everything it sets comes from the environment's config."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pyspark.sql import SparkSession

from shopperlake.core.config import Config, packaged
from shopperlake.core.errors import ConfigError

log = logging.getLogger(__name__)


def project_root() -> Path:
    """Root against which relative paths in config (jars dir, lake root) are resolved:
    $SHOPPERLAKE_HOME, else the checkout this package is installed from, else the working
    directory."""
    env = os.environ.get("SHOPPERLAKE_HOME")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[3]
    return checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()


def local_jars(cfg: Config) -> list[str]:
    """Jar files of ``spark.jars_dir`` (empty when the env ships jars another way)."""
    jars_dir = cfg.get("spark.jars_dir")
    if not jars_dir:
        return []
    path = Path(jars_dir)
    if not path.is_absolute():
        path = project_root() / path
    jars = sorted(str(p) for p in path.glob("*.jar"))
    if not jars:
        raise ConfigError(
            f"no Delta jars in {path} (spark.jars_dir): run `make setup` to fetch them"
        )
    return jars


def build_session(cfg: Config, app_name: str | None = None) -> SparkSession:
    """Build (or join) the SparkSession for ``cfg``'s environment with Delta enabled.

    Under spark-submit the JVM already has master, jars and packages; builder settings only
    fill what it lacks. In local mode the Delta jars come from the local folder, no network.
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.appName(app_name or cfg.get("spark.app_name", "shopperlake"))
    master = cfg.get("spark.master")
    master_env = cfg.get("spark.master_env")
    if master_env and os.environ.get(str(master_env)):
        master = os.environ[str(master_env)]
    # spark-submit starts the JVM first and hands Python its gateway port.
    submitted = bool(os.environ.get("PYSPARK_GATEWAY_PORT"))
    if master and not submitted:
        builder = builder.master(str(master))
    for key, value in (cfg.get("spark.conf") or {}).items():
        builder = builder.config(str(key), str(value))
    if not submitted:
        log4j = packaged("_conf", "log4j2.properties")
        extra = str(cfg.get("spark.conf", {}).get("spark.driver.extraJavaOptions") or "")
        if isinstance(log4j, Path) and log4j.is_file() and "log4j2.configurationFile" not in extra:
            # Before the JVM starts, so Spark's start-up INFO lines are quiet too.
            option = f"-Dlog4j2.configurationFile={log4j.resolve().as_uri()}"
            builder = builder.config("spark.driver.extraJavaOptions", f"{extra} {option}".strip())
        jars = local_jars(cfg)
        if jars:
            builder = builder.config("spark.jars", ",".join(jars))
        elif cfg.get("spark.packages"):
            builder = builder.config("spark.jars.packages", ",".join(cfg.get("spark.packages")))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("Spark %s session up (master=%s)", spark.version, spark.sparkContext.master)
    return spark
