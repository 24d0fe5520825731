"""spark-submit arguments for one environment, from its layered config (used by ``submit.sh``).

YAML is parsed here and only here; ``submit.sh`` reads the printed arguments into an array.

- ``--master``: ``spark.master``; when ``spark.master_env`` names an environment variable that
  is set, its value wins (standalone: ``$SPARK_MASTER_URL``). No master on real clusters: the
  scheduler (YARN, Kubernetes) or the caller's own ``--master`` supplies it.
- ``--jars`` with the jar files of ``spark.jars_dir`` (local, standalone; no network), otherwise
  ``--packages`` with ``spark.packages`` (clusters that reach Maven).
- ``--py-files`` with the package wheel (``pip wheel .``: ``lib/shopperlake`` with ``conf/`` and
  ``sql/`` as package data), saved under a ``.zip`` name.
- ``--conf k=v`` for ``spark.conf`` then ``spark.submit_conf`` (later wins).
- ``spark.python`` (relative to the repo) becomes ``spark.pyspark.python`` and
  ``spark.pyspark.driver.python``: the repo's venv interpreter in local and standalone mode,
  where driver and executors share this machine. A real cluster leaves it null and ships a
  packed environment instead, e.g. in ``spark.submit_conf``:
  ``spark.archives: hdfs:///envs/shopperlake.tar.gz#environment`` and
  ``spark.pyspark.python: ./environment/bin/python`` (pack it with ``venv-pack`` or
  ``conda-pack`` from the same pins; in client mode also set ``spark.pyspark.driver.python``
  to a local interpreter with the same stack).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from shopperlake.core.config import Config, load_config
from shopperlake.core.errors import ConfigError, ShopperLakeError

log = logging.getLogger(__name__)

PACKAGE_ZIP = Path(".sl-build") / "shopperlake.zip"


def conf_value(value: Any) -> str:
    """A YAML value as Spark expects it on the command line (``true``, not ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _repo_path(repo_root: Path, value: str) -> Path:
    path = Path(value).expanduser()
    # No resolve(): a venv's bin/python is a symlink whose target is not the venv.
    return path if path.is_absolute() else repo_root / path


def jar_files(cfg: Config, repo_root: Path) -> list[str]:
    """Jar files of ``spark.jars_dir`` (relative to the repo), or [] when it is null."""
    jars_dir = cfg.get("spark.jars_dir")
    if not jars_dir:
        return []
    folder = _repo_path(repo_root, str(jars_dir))
    jars = sorted(str(p) for p in folder.glob("*.jar"))
    if not jars:
        raise ConfigError(
            f"no Delta jars in {folder} (spark.jars_dir): run `make setup` to fetch them"
        )
    return jars


def submit_args(
    cfg: Config,
    repo_root: Path,
    zip_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """spark-submit options (everything before the application file) for ``cfg``'s env."""
    environ = os.environ if environ is None else environ
    args: list[str] = []
    master = cfg.get("spark.master")
    master_env = cfg.get("spark.master_env")
    if master_env and environ.get(str(master_env)):
        master = environ[str(master_env)]
    if master:
        args += ["--master", str(master)]
    jars = jar_files(cfg, repo_root)
    packages = [str(p) for p in cfg.get("spark.packages") or []]
    if jars:
        args += ["--jars", ",".join(jars)]
    elif packages:
        args += ["--packages", ",".join(packages)]
    args += ["--py-files", str(zip_path or repo_root / PACKAGE_ZIP)]
    confs: dict[str, str] = {}
    python = cfg.get("spark.python")
    if python:
        interpreter = str(_repo_path(repo_root, str(python)))
        confs["spark.pyspark.python"] = interpreter
        confs["spark.pyspark.driver.python"] = interpreter
    for section in ("spark.conf", "spark.submit_conf"):
        for key, value in (cfg.get(section) or {}).items():
            confs[str(key)] = conf_value(value)
    for key, value in confs.items():
        args += ["--conf", f"{key}={value}"]
    return args


def package_sources(repo_root: Path) -> Iterator[tuple[str, Path]]:
    """(name, file) of everything the wheel is built from, in a stable order: the package and
    the conf/ and sql/ folders it ships as package data."""
    for folder in ("lib/shopperlake", "conf", "sql"):
        base = repo_root / folder
        if not base.is_dir():
            raise ConfigError(f"{base} not found: is {repo_root} the ShopperLake repo?")
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(base)
            if path.is_symlink() or not path.is_file():
                continue
            if "__pycache__" in rel.parts or path.suffix == ".pyc":
                continue
            yield f"{folder}/{rel.as_posix()}", path
    yield "pyproject.toml", repo_root / "pyproject.toml"


def sources_digest(repo_root: Path) -> str:
    digest = hashlib.sha256()
    for name, path in package_sources(repo_root):
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def build_package(repo_root: Path, zip_path: Path | None = None) -> bool:
    """Build the package wheel with ``pip wheel .`` when its sources changed and place it at
    ``zip_path`` (a ``.zip`` name: Spark puts ``--py-files`` ending in .zip/.egg/.jar on the
    executors' path, not .whl); True when (re)built. The sources' hash is kept beside it."""
    target = zip_path or repo_root / PACKAGE_ZIP
    stamp = target.with_name(target.name + ".sha256")
    digest = sources_digest(repo_root)
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    # Jobs started together (parallel Airflow tasks) build one at a time: pip builds in-tree.
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
            return False  # another job built it while this one waited
        _pip_wheel(repo_root, target)
        stamp.write_text(digest + "\n")
    log.info("built %s (pip wheel of %s)", target, repo_root)
    return True


def _pip_wheel(repo_root: Path, target: Path) -> None:
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
               "--no-build-isolation", "--wheel-dir", tmp, str(repo_root)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = sorted(Path(tmp).glob("shopperlake-*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise ConfigError(f"pip wheel {repo_root} failed: {last}")
        os.replace(wheels[0], target)  # atomic: a job starting meanwhile sees old or new


def main(argv: Sequence[str] | None = None) -> int:
    """Validate the env, refresh the package zip, print the spark-submit options one a line."""
    parser = argparse.ArgumentParser(
        prog="python -m shopperlake.core.submit_args",
        description="Print the spark-submit options of an environment, one per line.",
    )
    parser.add_argument("--env", default="local")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--repo-root", type=Path, default=Path.cwd())
    parser.add_argument("--zip", type=Path, default=None, help="default <repo>/" + str(PACKAGE_ZIP))
    parser.add_argument("--no-build", action="store_true", help="do not refresh the zip")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="submit.sh: %(message)s")
    repo_root = args.repo_root.absolute()
    zip_path = args.zip.absolute() if args.zip else repo_root / PACKAGE_ZIP
    try:
        cfg = load_config(args.env, args.set)
        options = submit_args(cfg, repo_root, zip_path)
        bad = [a for a in options if "\n" in a or "\r" in a]
        if bad:
            raise ConfigError(f"spark-submit option contains a line break: {bad[0]!r}")
        if not args.no_build:
            build_package(repo_root, zip_path)
    except (ShopperLakeError, OSError) as exc:
        text = str(exc).strip().splitlines()
        print(f"submit.sh: error: {text[0] if text else type(exc).__name__}", file=sys.stderr)
        return 2
    sys.stdout.write("".join(f"{a}\n" for a in options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
