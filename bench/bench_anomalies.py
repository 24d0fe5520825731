"""Benchmark: anomaly detection on synthetic lakes of growing size, and its quality against the
planted abuse, through ./submit.sh (local env).

For each size: ``generate --abuse-share`` (1 % of the human users get one kind of planted
abuse, plus the generator's 0.5 % scraper bots and a purchase-feed outage), ``ingest``, then
``detect_anomalies --as-of <last day>`` timed (the figure: wall time of the submit, Spark
start included), then once more with ``--truth`` for the per-type PR-AUC, precision, recall
and false-positive rate with bootstrap intervals (printed by the job, stored in
``gold.model_metrics``). Defaults: 10k, 30k and 100k users x 10k items x 180 days, about
1M, 3M and 10M events.

    .venv/bin/python bench/bench_anomalies.py [--users 10000,30000,100000] [--days 180]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START = dt.date(2024, 1, 1)


def run(cmd: list[str], quiet: bool = False) -> tuple[float, str]:
    started = time.monotonic()
    print("$", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True)
    if not quiet:
        print(done.stdout, end="", flush=True)
    return time.monotonic() - started, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", default="10000,30000,100000")
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--abuse-share", type=float, default=0.01)
    parser.add_argument("--workdir", default=str(REPO / "bench" / "work" / "anomalies"))
    args = parser.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    last = START + dt.timedelta(days=args.days - 1)
    rows = []
    for users in [int(u) for u in args.users.split(",")]:
        work = Path(args.workdir) / f"u{users}"
        raw, lake = work / "raw", work / "lake"
        shutil.rmtree(work, ignore_errors=True)
        common = ["--lake", str(lake), "--log-level", "WARNING"]
        gen_s, _ = run(["./submit.sh", "generate", "--users", str(users), "--items",
                        str(args.items), "--days", str(args.days), "--seed", "42",
                        "--start-date", str(START), "--abuse-share", str(args.abuse_share),
                        "--output", str(raw), *common], quiet=True)  # fmt: skip
        ingest_s, _ = run(["./submit.sh", "ingest", "--source", "synthetic", "--input",
                             str(raw), "--as-of", str(last), *common], quiet=True)  # fmt: skip
        events = count_events(lake)
        detect_s, _ = run(["./submit.sh", "detect_anomalies", "--as-of", str(last), *common],
                          quiet=True)  # fmt: skip
        _, report = run(["./submit.sh", "detect_anomalies", "--as-of", str(last), "--truth",
                         str(raw / "truth"), *common])  # fmt: skip
        rows.append((users, events, gen_s, ingest_s, detect_s))
        print(f"users {users:,}: {events:,} events; generate {gen_s:.1f} s, ingest "
              f"{ingest_s:.1f} s, detect_anomalies {detect_s:.1f} s "
              f"({events / detect_s:,.0f} events/s)", flush=True)  # fmt: skip
    print("\nusers | events | detect_anomalies wall s | events/s | s per 1M events")
    for users, events, _, _, detect_s in rows:
        print(f"{users:,} | {events:,} | {detect_s:.1f} | {events / detect_s:,.0f} | "
              f"{detect_s / events * 1e6:.1f}")  # fmt: skip
    return 0


def count_events(lake: Path) -> int:
    """Rows of bronze.events (from the Delta log's add actions: no Spark needed)."""
    import json

    total = 0
    for entry in sorted((lake / "bronze" / "events" / "_delta_log").glob("*.json")):
        for line in entry.read_text().splitlines():
            action = json.loads(line)
            if "add" in action and action["add"].get("stats"):
                total += json.loads(action["add"]["stats"])["numRecords"]
            if "remove" in action:
                raise RuntimeError("bronze.events had files removed: count with Spark instead")
    return total


if __name__ == "__main__":
    raise SystemExit(main())
