"""The job registry: every job of the suite, as its capability package declares it.

``jobs/<name>.py`` (the spark-submit entry files), ``shopperlake <job>`` (in-process),
``./submit.sh --list``, the Airflow DAG (:mod:`shopperlake.schedule`) and the data-flow diagram
of ``docs/jobs.md`` all read this one table.

``train --model recommender`` and ``score --model recommender`` are kept as aliases of
``train_recommender`` / ``score_recommender``; ``build_training_set|train|score --model
returns`` name the return model's jobs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pyspark.sql import SparkSession

from shopperlake.anomalies.job import DETECT_ANOMALIES
from shopperlake.churn.score import SCORE
from shopperlake.churn.train import TRAIN
from shopperlake.churn.training_set import BUILD_TRAINING_SET
from shopperlake.core.cli import WRITERS, Job
from shopperlake.forecast.job import BACKTEST, FORECAST
from shopperlake.ingest.job import INGEST
from shopperlake.ops.erase import ERASE
from shopperlake.ops.maintain import MAINTAIN
from shopperlake.profiles.job import BUILD_PROFILES
from shopperlake.rec.job import MODEL as RECOMMENDER
from shopperlake.rec.job import SCORE_RECOMMENDER, TRAIN_RECOMMENDER
from shopperlake.report.job import REPORT
from shopperlake.returns.score import SCORE_RETURNS
from shopperlake.returns.spec import MODEL as RETURNS
from shopperlake.returns.train import TRAIN_RETURNS
from shopperlake.returns.training_set import BUILD_RETURN_TRAINING_SET
from shopperlake.segments.job import BUILD_SEGMENTS
from shopperlake.seqmodel.sasrec import MODEL as SASREC
from shopperlake.sequences.job import BUILD_SEQUENCES
from shopperlake.sequences.score import SCORE_SASREC
from shopperlake.sequences.train import TRAIN_SASREC
from shopperlake.synthetic.generate import GENERATE
from shopperlake.views.query import QUERY

JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        GENERATE,
        INGEST,
        BUILD_PROFILES,
        BUILD_SEGMENTS,
        BUILD_TRAINING_SET,
        TRAIN,
        SCORE,
        TRAIN_RECOMMENDER,
        SCORE_RECOMMENDER,
        BUILD_RETURN_TRAINING_SET,
        TRAIN_RETURNS,
        SCORE_RETURNS,
        FORECAST,
        BACKTEST,
        DETECT_ANOMALIES,
        BUILD_SEQUENCES,
        TRAIN_SASREC,
        SCORE_SASREC,
        QUERY,
        MAINTAIN,
        ERASE,
        REPORT,
    )
}
WRITERS.update(
    {
        name: job.writes
        for name, job in JOBS.items()
        if job.name not in {"query", "maintain", "erase", "report"}
    }
)
# (job, --model value) → the job that value names
ALIASES = {("train", RECOMMENDER): TRAIN_RECOMMENDER.name,
           ("score", RECOMMENDER): SCORE_RECOMMENDER.name,
           ("build_training_set", RETURNS): BUILD_RETURN_TRAINING_SET.name,
           ("train", RETURNS): TRAIN_RETURNS.name,
           ("score", RETURNS): SCORE_RETURNS.name,
           ("train", SASREC): TRAIN_SASREC.name,
           ("score", SASREC): SCORE_SASREC.name}  # fmt: skip


def resolve(name: str, argv: Sequence[str]) -> Job:
    """The job ``name`` runs with ``argv`` (aliases followed); KeyError for an unknown name."""
    if any(job == name for job, _ in ALIASES):
        probe = argparse.ArgumentParser(add_help=False)
        probe.add_argument("--model")
        known, _ = probe.parse_known_args(list(argv))
        if (name, known.model) in ALIASES:
            return JOBS[ALIASES[(name, known.model)]]
    return JOBS[name]


def run(name: str, argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    """Run job ``name`` with ``argv`` (default: the process arguments); its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    return resolve(name, args).main(args, spark)


def listing() -> str:
    """One block per job: name, description, the tables it reads, writes and may build."""
    lines = []
    for job in JOBS.values():
        lines.append(f"{job.name}: {job.description}")
        lines.append(f"    reads:  {', '.join(job.reads) or '-'}")
        lines.append(f"    writes: {', '.join(job.writes) or '-'}")
        if job.builds:
            lines.append(f"    builds on demand: {', '.join(job.builds)}")
    for (name, model), target in ALIASES.items():
        lines.append(f"{name} --model {model}: alias of {target}")
    lines.append("backfill: the daily chain (the daily DAG's tasks) for each day of --from .. --to,"
                 " skipping what is unchanged (lib/shopperlake/backfill.py)")  # fmt: skip
    return "\n".join(lines)


def _node(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def mermaid() -> str:
    """The data-flow diagram of ``docs/jobs.md``: tables (and registry entries) → job → tables."""
    lines = ["flowchart LR"]
    for job in JOBS.values():
        lines.append(f"  job_{job.name}[[{job.name}]]")
        for table in job.reads:
            if table == "*" or table in job.writes:
                continue
            lines.append(f"  t_{_node(table)}[({table})] --> job_{job.name}")
        for table in job.writes:
            if table == "*":  # maintain: every table; drawn alone
                continue
            lines.append(f"  job_{job.name} --> t_{_node(table)}[({table})]")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``shopperlake <job> [args]``: run a job in this Python process (no spark-submit);
    ``shopperlake --list``: the jobs with their inputs and outputs."""
    args = list(sys.argv[1:] if argv is None else argv)
    # in-process runs: Python workers (pandas UDFs) use this interpreter, whose environment
    # has shopperlake, unless the caller chose another
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    names = ", ".join(JOBS)
    if not args or args[0] in {"-h", "--help"}:
        print(f"usage: shopperlake <job> [args] | --list  (jobs: {names})")
        return 0 if args else 2
    if args[0] == "--list":
        print(listing())
        return 0
    if args[0] == "--mermaid":
        print(mermaid())
        return 0
    if args[0] not in JOBS:
        print(f"shopperlake: error: unknown job '{args[0]}' (jobs: {names})", file=sys.stderr)
        return 2
    return run(args[0], args[1:])


if __name__ == "__main__":
    sys.exit(main())
