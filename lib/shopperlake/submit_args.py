"""spark-submit arguments for one environment, from its layered config (used by ``submit.sh``).

YAML is parsed here and only here; ``submit.sh`` reads the printed arguments into an array.

- ``--master``: ``spark.master``; when ``spark.master_env`` names an environment variable that
  is set, its value wins (standalone: ``$SPARK_MASTER_URL``). No master on real clusters: the
  scheduler (YARN, Kubernetes) or the caller's own ``--master`` supplies it.
- ``--jars`` with the jar files of ``spark.jars_dir`` (local, standalone; no network), otherwise
  ``--packages`` with ``spark.packages`` (clusters that reach Maven).
- ``--py-files`` with the package zip (``lib/shopperlake`` + ``conf/`` as ``shopperlake/_conf``).
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
import hashlib
import logging
import os
import sys
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from shopperlake.config import Config, load_config
from shopperlake.errors import ConfigError, ShopperLakeError

log = logging.getLogger(__name__)

PACKAGE_ZIP = Path(".sl-build") / "shopperlake.zip"
_HASH_TAG = b"shopperlake-sha256:"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same sources give the same zip


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


def package_files(repo_root: Path) -> Iterator[tuple[str, Path]]:
    """(name in the zip, file) for the package and the bundled config, in a stable order."""
    sources = (
        (repo_root / "lib" / "shopperlake", "shopperlake", True),
        (repo_root / "conf", "shopperlake/_conf", True),
        (repo_root / "sql", "shopperlake/_sql", False),  # read by sqlfiles.read_sql
    )
    for folder, prefix, required in sources:
        if not folder.is_dir():
            if not required:
                continue
            raise ConfigError(f"{folder} not found: is {repo_root} the ShopperLake repo?")
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if not path.is_file() or "__pycache__" in rel.parts or path.suffix == ".pyc":
                continue
            yield f"{prefix}/{rel.as_posix()}", path


def build_package(repo_root: Path, zip_path: Path | None = None) -> bool:
    """Write the ``--py-files`` zip when its content hash changed; True when (re)built."""
    target = zip_path or repo_root / PACKAGE_ZIP
    entries = [(name, path.read_bytes()) for name, path in package_files(repo_root)]
    digest = hashlib.sha256()
    for name, data in entries:
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    comment = _HASH_TAG + digest.hexdigest().encode()
    if target.is_file():
        try:
            with zipfile.ZipFile(target) as existing:
                if existing.comment == comment:
                    return False
        except zipfile.BadZipFile:
            log.warning("%s is not a valid zip: rebuilding it", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as out:
            for name, data in entries:
                info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                out.writestr(info, data)
            out.comment = comment
        os.replace(tmp, target)  # atomic: a job starting meanwhile sees the old or new zip
    finally:
        tmp.unlink(missing_ok=True)
    log.info("built %s (%d files)", target, len(entries))
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Validate the env, refresh the package zip, print the spark-submit options one a line."""
    parser = argparse.ArgumentParser(
        prog="python -m shopperlake.submit_args",
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
