"""Common job plumbing: flags shared by every job, config → session → lake, run log, and
one-line errors with a non-zero exit.

Every job module exposes ``main(argv)`` built with :func:`job_main`; ``jobs/<name>.py`` is a
two-line entry file for spark-submit and ``shopperlake <job> ...`` runs the same locally.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession

from shopperlake.config import Config, load_config
from shopperlake.errors import InputError, ShopperLakeError
from shopperlake.lake import Lake
from shopperlake.runlog import RunRecorder
from shopperlake.session import build_session

log = logging.getLogger("shopperlake")

JOBS = {
    "generate": "shopperlake.generate",
    "ingest": "shopperlake.ingest.job",
    "build_profiles": "shopperlake.build_profiles",
    "build_segments": "shopperlake.build_segments",
    "query": "shopperlake.query",
    "build_training_set": "shopperlake.ml.training_set",
    "train": "shopperlake.ml.train",
    "score": "shopperlake.ml.score",
}


@dataclass
class JobContext:
    """What a job body gets: parsed args, config, session, lake and its run record."""

    args: argparse.Namespace
    cfg: Config
    spark: SparkSession
    lake: Lake
    run: RunRecorder
    as_of: dt.date | None


def parse_date(value: str, flag: str = "--as-of") -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InputError(f"invalid {flag} '{value}': expected YYYY-MM-DD") from None


def base_parser(job: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"shopperlake {job}", description=description)
    parser.add_argument("--env", default="local", help="config environment (conf/<env>.yaml)")
    parser.add_argument("--lake", default=None, help="lake root (any Hadoop FS URI)")
    parser.add_argument("--as-of", dest="as_of", default=None, help="point-in-time date")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (repeatable), e.g. --set ingest.max_price=5000",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def job_main(
    job: str,
    description: str,
    add_args: Callable[[argparse.ArgumentParser], None],
    body: Callable[[JobContext], Any],
    argv: Sequence[str] | None = None,
    spark: SparkSession | None = None,
) -> int:
    """Parse, set up, run ``body`` inside a lake transaction, log the run; return exit code."""
    parser = base_parser(job, description)
    add_args(parser)
    args = parser.parse_args(argv)  # argparse itself exits 2 with a usage message
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    lake: Lake | None = None
    run: RunRecorder | None = None
    try:
        as_of = parse_date(args.as_of) if args.as_of else None
        cfg = load_config(args.env, args.set)
        session = spark or build_session(cfg, f"shopperlake-{job}")
        lake = Lake.from_config(session, cfg, args.lake)
        run = RunRecorder(job=job, params=dict(vars(args)), env=cfg.env, as_of=as_of)
        lake.lineage = run
        ctx = JobContext(args=args, cfg=cfg, spark=session, lake=lake, run=run, as_of=as_of)
        with lake.transaction():
            body(ctx)
        lake.lineage = None
        run.finish(lake, "success")
        return 0
    except ShopperLakeError as exc:
        _record_failure(lake, run, exc)
        print(f"shopperlake {job}: error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        log.exception("job %s failed", job)
        _record_failure(lake, run, exc)
        print(f"shopperlake {job}: error: {type(exc).__name__}: {one_line(exc)}", file=sys.stderr)
        return 1


def _record_failure(lake: Lake | None, run: RunRecorder | None, exc: BaseException) -> None:
    if lake is None or run is None:
        return
    lake.lineage = None
    try:
        run.finish(lake, "failed", error=one_line(exc))
    except Exception:  # an unwritable lake cannot take the run log either
        log.warning("could not record the failed run in meta.runs", exc_info=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``shopperlake <job> [args]``: run a job in this Python process (no spark-submit)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(f"usage: shopperlake <job> [args]  (jobs: {', '.join(sorted(JOBS))})")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in JOBS:
        print(
            f"shopperlake: error: unknown job '{name}' (jobs: {', '.join(sorted(JOBS))})",
            file=sys.stderr,
        )
        return 2
    module = importlib.import_module(JOBS[name])
    return int(module.main(rest))


if __name__ == "__main__":
    sys.exit(main())
