"""Benchmark: generate N synthetic events and ingest them, through ./submit.sh (local env).

Prints wall time and rows/s of each step and the row accounting from meta.runs. Default is
the issue's 10M-event size: 100k users x 10k items x 180 days (about 10.3M events, 2.1 GB).

    .venv/bin/python bench/bench_ingest.py [--users 100000 --items 10000 --days 180]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(cmd: list[str]) -> float:
    started = time.monotonic()
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--workdir", default=str(REPO / "bench" / "work"))
    parser.add_argument("--keep", action="store_true", help="keep raw files and lake")
    args = parser.parse_args()
    work = Path(args.workdir)
    raw, lake = work / "raw", work / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    os.environ.setdefault("PYSPARK_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    gen_s = run(
        [
            "./submit.sh",
            "generate",
            "--users",
            str(args.users),
            "--items",
            str(args.items),
            "--days",
            str(args.days),
            "--seed",
            "42",
            "--output",
            str(raw),
            "--lake",
            str(lake),
            "--log-level",
            "WARNING",
        ]
    )
    ing_s = run(
        [
            "./submit.sh",
            "ingest",
            "--source",
            "synthetic",
            "--input",
            str(raw),
            "--lake",
            str(lake),
            "--log-level",
            "WARNING",
        ]
    )
    from shopperlake.core.config import load_config
    from shopperlake.core.lake import Lake
    from shopperlake.core.session import build_session

    cfg = load_config("local", ["spark.conf.spark.ui.enabled=false"])
    spark = build_session(cfg, "bench-ingest-report")
    runs = Lake.from_config(spark, cfg, str(lake)).read("meta.runs").orderBy("started_at")
    rows = {r["job"]: r for r in runs.collect()}
    generated = int(rows["generate"]["rows_written"])
    ing = rows["ingest"]
    print()
    print(
        f"machine: {os.cpu_count()} cores; local[*]; {args.users:,} users x {args.items:,} "
        f"items x {args.days} days"
    )
    print(
        f"generate: {generated:,} event lines in {gen_s:.1f}s wall "
        f"({generated / gen_s:,.0f} events/s)"
    )
    print(
        f"ingest:   {ing['rows_read']:,} rows read in {ing_s:.1f}s wall "
        f"({ing['rows_read'] / ing_s:,.0f} rows/s); written {ing['rows_written']:,}, "
        f"duplicate {ing['rows_duplicate']:,}, quarantined {ing['rows_quarantined']:,}"
    )
    print(
        f"ingest job time (meta.runs): "
        f"{(ing['finished_at'] - ing['started_at']).total_seconds():.1f}s"
    )
    spark.stop()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
