"""Benchmark: ``build_profiles`` on N synthetic events vs DuckDB on the same Parquet files.

1. generate the synthetic clickstream and ingest it (both through ./submit.sh), unless the
   work folder already has them (default: 100k users x 10k items x 180 days, about 10.3M
   events, 2.1 GB of JSON; generating takes about 2.5 minutes on 2 cores);
2. time ``./submit.sh build_profiles --as-of <last day>`` (wall time including the JVM start,
   and the job's own time from meta.runs);
3. time DuckDB running the core of the profile (RFM + per-window counts by type, sessions,
   active days, purchases, spend for 7/30/90/365 days and all time, with plain
   count(DISTINCT ...)) over exactly the Parquet files of bronze.events' current snapshot;
4. print wall times, events/s and the ratio. ``--spark-core`` also times Spark SQL running the
   same core query as DuckDB (same work, same files).

    .venv/bin/python bench/bench_profiles.py [--users 100000 --items 10000 --days 180]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[1]
WINDOWS = (7, 30, 90, 365)
TYPES = (
    "view", "click", "search", "add_to_cart", "remove_from_cart", "purchase", "return", "review",
)  # fmt: skip


def run(cmd: list[str]) -> float:
    started = time.monotonic()
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)
    return time.monotonic() - started


def core_sql(table: str) -> str:
    """RFM + per-window counts, one GROUP BY over the raw events, for DuckDB and Spark SQL.

    Values are named parameters (``:as_of``, ``:end_ts``, ``:start_7d``, ...; see
    :func:`core_params`); only the column list is generated, from the fixed windows and types.
    """
    cols = [
        "min(ts) AS first_event_ts",
        "max(ts) AS last_event_ts",
        "datediff(:as_of, max(day) FILTER (WHERE event_type = 'purchase')) AS recency_days",
        "count(DISTINCT order_key) AS frequency",
        "coalesce(sum(spend), 0) AS monetary_total",
        "sum(spend) / count(DISTINCT order_key) AS avg_order_value",
    ]
    windows = [(f"{w}d", f"day >= :start_{w}d") for w in WINDOWS] + [("all", "TRUE")]
    for key, cond in windows:
        cols.append(f"count(*) FILTER (WHERE {cond}) AS events_{key}")
        for t in TYPES:
            cols.append(f"count(*) FILTER (WHERE {cond} AND event_type = '{t}') AS {t}_{key}")
        cols += [
            f"count(DISTINCT session_id) FILTER (WHERE {cond}) AS sessions_{key}",
            f"count(DISTINCT day) FILTER (WHERE {cond}) AS active_days_{key}",
            f"count(DISTINCT order_key) FILTER (WHERE {cond}) AS purchases_{key}",
            f"coalesce(sum(spend) FILTER (WHERE {cond}), 0) AS spend_{key}",
        ]
    body = ",\n  ".join(cols)
    return f"""
WITH e AS (
  SELECT user_id, session_id, ts, event_type, CAST(ts AS DATE) AS day,
    CASE WHEN event_type = 'purchase' THEN coalesce(order_id, event_id) END AS order_key,
    CASE WHEN event_type = 'purchase' THEN round(price * coalesce(quantity, 1), 2) END AS spend
  FROM {table}
  WHERE ts < :end_ts
)
SELECT user_id,
  {body}
FROM e
GROUP BY user_id
"""


def core_params(as_of: dt.date) -> dict[str, object]:
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    params: dict[str, object] = {"as_of": as_of, "end_ts": end}
    for w in WINDOWS:
        params[f"start_{w}d"] = as_of - dt.timedelta(days=w - 1)
    return params


def duckdb_core(files: list[str], as_of: dt.date) -> tuple[float, int]:
    """Seconds DuckDB takes for the core query over ``files`` (result fetched as Arrow)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO ?", [os.cpu_count() or 1])
    query = re.sub(r"(?<![:\w]):(\w+)", r"$\1", core_sql("events"))
    query = query.replace("datediff(", "date_diff('day', ")
    started = time.monotonic()
    con.register("events", con.read_parquet(files))
    result = con.execute(query, core_params(as_of)).fetch_arrow_table()
    elapsed = time.monotonic() - started
    con.close()
    return elapsed, result.num_rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--start-date", default="2024-01-01")
    parser.add_argument(
        "--workdir", default=str(Path(tempfile.gettempdir()) / "shopperlake-bench-profiles")
    )
    parser.add_argument("--spark-core", action="store_true", help="also time the core in Spark")
    args = parser.parse_args()
    work = Path(args.workdir)
    raw, lake = work / "raw", work / "lake"
    os.environ.setdefault("PYSPARK_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    common = ["--lake", str(lake), "--log-level", "WARNING"]
    as_of = dt.date.fromisoformat(args.start_date) + dt.timedelta(days=args.days - 1)

    if not (raw / "events").is_dir():
        run(["./submit.sh", "generate", "--users", str(args.users), "--items", str(args.items),
             "--days", str(args.days), "--seed", "42", "--start-date", args.start_date,
             "--output", str(raw), *common])  # fmt: skip
    if not (lake / "bronze" / "events" / "_delta_log").is_dir():
        run(["./submit.sh", "ingest", "--source", "synthetic", "--input", str(raw), *common])

    profiles_s = run(["./submit.sh", "build_profiles", "--as-of", str(as_of), *common])

    from pyspark.sql import functions as F

    from shopperlake.core.config import load_config
    from shopperlake.core.lake import Lake
    from shopperlake.core.session import build_session

    cfg = load_config("local", ["spark.conf.spark.ui.enabled=false"])
    spark = build_session(cfg, "bench-profiles-report")
    lk = Lake.from_config(spark, cfg, str(lake))
    runs = lk.read("meta.runs").where(F.col("job") == "build_profiles").orderBy("started_at")
    job = runs.collect()[-1]
    events, users = int(job["rows_read"]), int(job["rows_written"])
    job_s = (job["finished_at"] - job["started_at"]).total_seconds()
    phases = {k: v for k, v in (job["metrics"] or {}).items() if k.startswith("seconds.")}
    grain_rows = int((job["metrics"] or {}).get("grain_rows", 0))
    files = [urlparse(f).path for f in lk.read("bronze.events").inputFiles()]

    spark_core_s = None
    if args.spark_core:
        spark.read.parquet(*files).createOrReplaceTempView("bench_events")
        started = time.monotonic()
        core = spark.sql(core_sql("bench_events"), args=core_params(as_of))
        core.write.format("noop").mode("overwrite").save()
        spark_core_s = time.monotonic() - started
    spark.stop()

    duck_s, duck_users = duckdb_core(files, as_of)

    print()
    size = f"{args.users:,} users x {args.items:,} items x {args.days} days"
    print(
        f"machine: {os.cpu_count()} cores, local[*]; {events:,} events of {users:,} users "
        f"({size}), as of {as_of}"
    )
    print(
        f"build_profiles (./submit.sh, wall):  {profiles_s:7.1f} s  "
        f"{events / profiles_s:>12,.0f} events/s"
    )
    print(f"build_profiles (job, meta.runs):     {job_s:7.1f} s  {events / job_s:>12,.0f} events/s")
    print(
        "  phases: "
        + ", ".join(f"{k.removeprefix('seconds.')} {v:.1f} s" for k, v in phases.items())
        + f" (grain: {grain_rows:,} rows); rest: session, reads, tags, run log"
    )
    if spark_core_s is not None:
        print(
            f"Spark SQL core aggregation:          {spark_core_s:7.1f} s  "
            f"{events / spark_core_s:>12,.0f} events/s"
        )
    print(
        f"DuckDB core aggregation ({duck_users:,} users): {duck_s:7.1f} s  "
        f"{events / duck_s:>12,.0f} events/s"
    )
    print(
        f"ratio build_profiles job / DuckDB core: {job_s / duck_s:.1f}x "
        f"(wall incl. JVM start: {profiles_s / duck_s:.1f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
