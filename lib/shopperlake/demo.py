"""``make demo``: the embedded default end to end on one machine.

Generates a synthetic clickstream, ingests it and the real CDNOW transactions into a local
Delta lake (``./lake``), then prints what was written. Every step is the same job entry point
``submit.sh`` runs, called in this process with one shared local Spark session.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shopperlake.config import load_config
from shopperlake.lake import Lake
from shopperlake.session import build_session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    title: str
    job: Callable[..., int]
    argv: list[str]


def steps(args: argparse.Namespace, raw: str) -> list[Step]:
    from shopperlake.generate import main as generate
    from shopperlake.ingest.job import main as ingest

    common = ["--lake", args.lake, "--env", args.env, "--log-level", "WARNING"]
    return [
        Step(
            "generate synthetic clickstream",
            generate,
            [*common, "--users", str(args.users), "--items", str(args.items), "--days",
             str(args.days), "--seed", "42", "--start-date", args.start_date, "--output", raw],
        ),
        Step("ingest synthetic", ingest, [*common, "--source", "synthetic", "--input", raw]),
        Step("ingest CDNOW (lifetimes package)", ingest, [*common, "--source", "cdnow"]),
    ]


def summary(lake: Lake) -> str:
    """Tables, rows, Delta versions, quarantined rows and the run log, as plain text."""
    out = ["", f"Lake: {lake.root}", f"{'table':<24}{'rows':>12}{'version':>9}"]
    for name in lake.tables():
        if lake.exists(name):
            out.append(f"{name:<24}{lake.read(name).count():>12,}{lake.version(name):>9}")
    if lake.exists("bronze.events"):
        out += ["", "bronze.events by source and type:"]
        by = (
            lake.read("bronze.events")
            .groupBy("source")
            .pivot("event_type")
            .count()
            .orderBy("source")
            .fillna(0)
        )
        cols = [c for c in by.columns if c != "source"]
        out.append("  " + f"{'source':<11}" + "".join(f"{c[:9]:>10}" for c in cols))
        for row in by.collect():
            out.append("  " + f"{row['source']:<11}" + "".join(f"{row[c]:>10,}" for c in cols))
    if lake.exists("bronze.quarantine"):
        out += ["", "bronze.quarantine by reason:"]
        reasons = (
            lake.read("bronze.quarantine")
            .groupBy("source", "reason")
            .count()
            .orderBy(F.desc("count"))
            .collect()
        )
        out += [f"  {r['source']:<11}{r['reason']:<40}{r['count']:>8,}" for r in reasons]
    if lake.exists("meta.runs"):
        out += ["", "meta.runs (read = written + duplicate + quarantined):"]
        for r in lake.read("meta.runs").orderBy("started_at").collect():
            secs = (r["finished_at"] - r["started_at"]).total_seconds()
            out.append(
                f"  {r['job']:<15}{r['status']:<8}read {r['rows_read'] or 0:>9,}  written "
                f"{r['rows_written'] or 0:>9,}  dup {r['rows_duplicate'] or 0:>7,}  "
                f"quarantined {r['rows_quarantined'] or 0:>5,}  {secs:6.1f}s"
            )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shopperlake.demo", description=__doc__)
    parser.add_argument("--lake", default="lake")
    parser.add_argument("--raw", default="data/raw/synthetic", help="where generated files go")
    parser.add_argument("--env", default="local")
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--items", type=int, default=800)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--start-date", dest="start_date", default="2024-01-01")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    spark: SparkSession = build_session(load_config(args.env), "shopperlake-demo")
    raw = str(Path(args.raw).resolve())
    for step in steps(args, raw):
        started = time.monotonic()
        print(f"==> {step.title}", flush=True)
        code = step.job(step.argv, spark=spark)
        if code != 0:
            print(f"demo: step '{step.title}' failed (exit {code})", file=sys.stderr)
            return code
        print(f"    done in {time.monotonic() - started:.1f}s", flush=True)
    print(summary(Lake.from_config(spark, load_config(args.env), args.lake)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
