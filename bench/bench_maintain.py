"""Benchmark: ``build_profiles`` on a lake of many small daily ingests, before and after
``maintain``.

1. generate the synthetic clickstream (default 3,000 users x 800 items x 20 days) and split its
   events into ``--batches`` input folders per day (users and items go with the first);
2. ingest the batches one by one (one ``ingest`` run each, as an intraday schedule would):
   every batch adds a file to its day's partition of ``bronze.events``;
3. time ``build_profiles --as-of <last day>`` ``--repeats`` times (median; the job is
   idempotent, each run replaces the same snapshot);
4. run ``maintain`` (default retention: the replaced files stay on disk for 168 h, the latest
   version is compacted and Z-ordered by ``user_id``);
5. time ``build_profiles`` again, print both medians, their ratio and the files of every table
   before and after (from the job's own metrics in ``meta.runs``).

Jobs run in-process in one local Spark session (the same entry points ``submit.sh`` runs), so
JVM start-up is not part of the timings.

    .venv/bin/python bench/bench_maintain.py [--days 20 --batches 3 --users 3000 --items 800]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START = dt.date(2024, 1, 1)
DAY = re.compile(r'"ts":"(\d{4}-\d{2}-\d{2})T')


def split_by_day(raw: Path, days_dir: Path, batches: int) -> list[Path]:
    """``batches`` folders per event day (lines dealt round-robin), each with ``events/``; the
    first also gets users and items."""
    lines: dict[str, list[str]] = {}
    day = START.isoformat()
    for part in sorted((raw / "events").glob("part-*")):
        for line in part.read_text().splitlines():
            found = DAY.search(line)  # a malformed line goes with the line before it
            if found:
                day = found.group(1)
            lines.setdefault(day, []).append(line)
    folders = []
    for day in sorted(lines):
        for b in range(batches):
            folder = days_dir / f"{day}_{b}"
            (folder / "events").mkdir(parents=True)
            (folder / "events" / "part-00000.txt").write_text(
                "\n".join(lines[day][b::batches]) + "\n"
            )
            if not folders:
                for entity in ("users", "items"):
                    shutil.copytree(raw / entity, folder / entity)
            folders.append(folder)
    return folders


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--batches", type=int, default=3, help="ingests per day")
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--items", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    from pyspark.sql import functions as F

    from shopperlake.core.config import load_config
    from shopperlake.core.lake import Lake
    from shopperlake.core.session import build_session
    from shopperlake.jobs import run

    work = REPO / "bench" / "work" / "maintain"
    shutil.rmtree(work, ignore_errors=True)
    raw, lake_root = work / "raw", str(work / "lake")
    cfg = load_config("local", ["spark.conf.spark.ui.enabled=false"])
    spark = build_session(cfg, "bench-maintain")
    common = ["--lake", lake_root, "--log-level", "WARNING",
              "--set", "spark.conf.spark.ui.enabled=false"]  # fmt: skip
    assert run("generate", [*common, "--users", str(args.users), "--items", str(args.items),
                            "--days", str(args.days), "--seed", "42",
                            "--start-date", START.isoformat(), "--output", str(raw)],
               spark=spark) == 0  # fmt: skip
    folders = split_by_day(raw, work / "days", args.batches)
    started = time.monotonic()
    for folder in folders:
        day = ["--as-of", folder.name.split("_")[0]]
        assert run("ingest", [*common, "--source", "synthetic", "--input", str(folder), *day],
                   spark=spark) == 0  # fmt: skip
    ingest_s = time.monotonic() - started
    as_of = folders[-1].name.split("_")[0]

    def profile_times() -> list[float]:
        times = []
        for _ in range(args.repeats):
            t = time.monotonic()
            assert run("build_profiles", [*common, "--as-of", as_of], spark=spark) == 0
            times.append(time.monotonic() - t)
        return times

    before = profile_times()
    t = time.monotonic()
    assert run("maintain", [*common, "--as-of", as_of], spark=spark) == 0
    maintain_s = time.monotonic() - t
    after = profile_times()
    lake = Lake.from_config(spark, cfg, lake_root)
    m = lake.read("meta.runs").where("job = 'maintain'").orderBy(F.desc("started_at")).first()
    assert m is not None and m.metrics is not None
    print(
        f"\n{len(folders)} ingests ({args.batches} a day, {ingest_s:.0f} s), profiles as of {as_of}"
    )
    print(f"{'table':<26}{'latest files before':>21}{'after':>8}{'stored MB':>11}")
    for name in sorted({k.rsplit(".", 1)[0] for k in m.metrics}):
        get = m.metrics.get
        print(f"{name:<26}{get(f'{name}.latest_files_before', 0):>21,.0f}"
              f"{get(f'{name}.latest_files_after', 0):>8,.0f}"
              f"{get(f'{name}.stored_bytes_after', 0) / 1e6:>11.1f}")  # fmt: skip
    b, a = statistics.median(before), statistics.median(after)
    print(f"build_profiles median of {args.repeats}: before maintain {b:.1f} s "
          f"({', '.join(f'{x:.1f}' for x in before)}), after {a:.1f} s "
          f"({', '.join(f'{x:.1f}' for x in after)}); after/before {a / b:.2f}; "
          f"maintain {maintain_s:.0f} s")  # fmt: skip
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
