"""Benchmark: the demand forecast of the top 10,000 synthetic items for 28 days, through
./submit.sh (local env).

``generate`` (default 100k users x 10k items x 180 days, about 10M events, no planted abuse),
``ingest``, then ``forecast --level item --as-of <last day> --horizon 28`` with
``forecast.levels.item.top_n=10000``, timed twice (the figure: the median wall time of the
submit, Spark start included; the job's own "fitted and written" seconds are printed too):
every candidate (statsforecast's local models per series on the executors, the global XGBoost
model on the driver), two validation windows, the choice and the conformal intervals.

    .venv/bin/python bench/bench_forecast.py [--users 100000] [--items 10000] [--reuse]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START = dt.date(2024, 1, 1)
FITTED = re.compile(r"(\d[\d,]*) series x (\d+) days .*fitted and written in ([0-9.]+) s")


def submit(args: list[str]) -> tuple[float, str]:
    cmd = ["./submit.sh", *args]
    print("$", " ".join(cmd), flush=True)
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True)
    return time.monotonic() - started, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--top", type=int, default=10_000, help="items forecast (top by units)")
    parser.add_argument("--horizon", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=2, help="forecast runs (median)")
    parser.add_argument("--reuse", action="store_true", help="keep the lake of a previous run")
    parser.add_argument("--workdir", default=str(REPO / "bench" / "work" / "forecast_synthetic"))
    args = parser.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    work = Path(args.workdir)
    raw, lake = work / "raw", work / "lake"
    last = START + dt.timedelta(days=args.days - 1)
    common = ["--lake", str(lake), "--log-level", "WARNING"]
    if not args.reuse:
        shutil.rmtree(work, ignore_errors=True)
        gen_s, _ = submit(["generate", "--users", str(args.users), "--items", str(args.items),
                           "--days", str(args.days), "--seed", "42", "--start-date", str(START),
                           "--abuse-share", "0", "--output", str(raw), *common])  # fmt: skip
        ingest_s, _ = submit(["ingest", "--source", "synthetic", "--input", str(raw),
                              "--as-of", str(last), *common])  # fmt: skip
        print(f"generate {gen_s:.0f} s, ingest {ingest_s:.0f} s", flush=True)
    walls, fits = [], []
    for _ in range(args.repeats):
        wall, out = submit(["forecast", "--level", "item", "--as-of", str(last), "--horizon",
                            str(args.horizon), "--set", f"forecast.levels.item.top_n={args.top}",
                            *common])  # fmt: skip
        print(out, end="", flush=True)
        found = FITTED.search(out)
        assert found, out
        walls.append(wall)
        fits.append(float(found.group(3)))
        series = int(found.group(1).replace(",", ""))
    print(
        f"\nforecast of the top {series:,} items x {args.horizon} days as of {last}: "
        f"wall {statistics.median(walls):.0f} s (median of {len(walls)}: "
        f"{', '.join(f'{w:.0f}' for w in walls)}), fitted and written "
        f"{statistics.median(fits):.0f} s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
