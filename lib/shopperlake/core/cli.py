"""Common job plumbing: the :class:`Job` declaration, flags shared by every job, config →
session → lake, run log, and one-line errors with a non-zero exit.

Each capability package declares its jobs as :class:`Job` values (name, arguments, the tables
it reads and writes, body); :mod:`shopperlake.jobs` collects them, ``jobs/<name>.py`` is the
spark-submit entry file of one, and ``shopperlake <job> ...`` runs the same in-process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession

from shopperlake.core.config import Config, load_config
from shopperlake.core.errors import InputError, ShopperLakeError
from shopperlake.core.lake import Lake
from shopperlake.core.progress import Progress
from shopperlake.core.quality import configured, enforce, failed_errors, gate_error
from shopperlake.core.runlog import RunRecorder
from shopperlake.core.session import build_session

log = logging.getLogger("shopperlake")


# job name -> the tables it writes, filled by the job registry (shopperlake.jobs) when it is
# imported; jobs run through it name the command that builds a missing input table.
WRITERS: dict[str, tuple[str, ...]] = {}


@dataclass(frozen=True)
class Job:
    """One job, declared: what it is called, its arguments, the tables it reads and writes
    (the lake refuses any other while it runs) and its body.

    ``builds`` names inputs the job may build itself when a snapshot it needs is missing
    (training sets over past cutoffs need profile snapshots of those dates): an explicit,
    declared step, recorded in ``meta.runs`` (metric ``built.<table>``)."""

    name: str
    description: str
    add_args: Callable[[argparse.ArgumentParser], None]
    body: Callable[[JobContext], Any]
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    builds: tuple[str, ...] = ()
    # arguments whose values never reach meta.runs (erase: the user ids being erased)
    redact: tuple[str, ...] = ()

    def main(self, argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
        return job_main(self, argv, spark)


@dataclass
class JobContext:
    """What a job body gets: parsed args, config, session, lake and its run record."""

    args: argparse.Namespace
    cfg: Config
    spark: SparkSession
    lake: Lake
    run: RunRecorder
    as_of: dt.date | None
    builds: tuple[str, ...] = ()
    # stage lines: ``with ctx.progress.stage("name") as st: ...; st.rows = n``
    progress: Progress = field(default_factory=lambda: Progress("job"))


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


def recorded_params(spec: Job, args: argparse.Namespace) -> dict[str, Any]:
    """The parsed arguments as ``meta.runs.params`` records them (``spec.redact`` hidden)."""
    return {k: ("<redacted>" if k in spec.redact and v else v) for k, v in vars(args).items()}


def job_main(
    spec: Job, argv: Sequence[str] | None = None, spark: SparkSession | None = None
) -> int:
    """Parse, set up, run the body inside a lake transaction, log the run; return exit code."""
    job = spec.name
    parser = base_parser(job, spec.description)
    spec.add_args(parser)
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
        run = RunRecorder(job=job, params=recorded_params(spec, args), env=cfg.env, as_of=as_of)
        lake.lineage = run
        lake.declared = (job, frozenset(spec.reads), frozenset(spec.writes))
        lake.writers = WRITERS
        ctx = JobContext(
            args=args,
            cfg=cfg,
            spark=session,
            lake=lake,
            run=run,
            as_of=as_of,
            builds=spec.builds,
            progress=Progress(job),
        )
        gates = configured(cfg.get("quality"), lake.tables())
        with lake.transaction():
            spec.body(ctx)
            # quality gates on what the body wrote: a failed `error` check rolls it all back
            with ctx.progress.stage("quality gates") as stage:
                run.quality = enforce(lake, gates, lake.written(), as_of)
                stage.rows = len(run.quality)
            failures = failed_errors(run.quality)
            if failures:
                raise gate_error(failures)
            warned = [r for r in run.quality if r.status == "fail"]
            if warned:
                run.metrics["quality.warnings"] = float(len(warned))
        lake.lineage = None
        lake.declared = None
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
    lake.declared = None
    try:
        run.finish(lake, "failed", error=one_line(exc))
    except Exception:  # an unwritable lake cannot take the run log either
        log.warning("could not record the failed run in meta.runs", exc_info=True)
