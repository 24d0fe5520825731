"""Demand forecasting on real data: dunnhumby The Complete Journey, the README's protocol.

Ingests the transactions, products and promotions (``make data``) into a fresh lake, prints
where every line went, runs ``backtest`` for both levels (190 categories with >= 1,000 units in
2017, the top 500 products; three 28-day test windows from 2017-10-09, 2017-11-06, 2017-12-04,
each trained on everything before it), which prints pooled WAPE, mean MASE and interval coverage
with bootstrap intervals over series and the paired comparison of the per-series choice with
every method (with the shop's closing calendar, ``--closed-days``: every forecast of a day
the stores are closed is 0), and times the local-model fit with 1 and with 2 executor cores
(``forecast --level category`` as of 2017-12-03 in a fresh process each, median of
``--repeats``; the ``fit_seconds`` the job records in ``meta.runs``: fitting, choosing and
writing).

    .venv/bin/python bench/report_forecast_completejourney.py [--reuse] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AS_OF = "2017-12-03"
FIT = re.compile(r"fitted and written in ([0-9.]+) s")


def fit_seconds(lake_root: str, cores: int) -> float:
    """One ``forecast --level category`` in its own process on ``local[cores]``: the fit
    seconds it prints."""
    py = str(REPO / ".venv" / "bin" / "python")
    cmd = [
        py, "-m", "shopperlake.jobs", "forecast", "--lake", lake_root, "--as-of", AS_OF,
        "--level", "category", "--source", "completejourney", "--log-level", "WARNING",
        "--set", f"spark.master=local[{cores}]", "--set", "spark.conf.spark.ui.enabled=false",
    ]  # fmt: skip
    env = {**os.environ, "PYSPARK_PYTHON": py}
    out = subprocess.run(cmd, check=True, cwd=REPO, env=env, capture_output=True, text=True)
    found = FIT.search(out.stdout)
    assert found, out.stdout
    return float(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true", help="keep the lake of a previous run")
    parser.add_argument("--repeats", type=int, default=1, help="fits per core count (median)")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument(
        "--closed-days", default="12-25",
        help="forecast.closed_days, comma-separated (default 12-25: the stores' one closing "
        "day of 2017; '' for none)",
    )  # fmt: skip
    args = parser.parse_args()
    work = REPO / "bench" / "work" / "completejourney_forecast"
    os.environ.setdefault("PYSPARK_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    from pyspark.sql import functions as F

    from shopperlake.core.config import load_config
    from shopperlake.core.lake import Lake
    from shopperlake.core.session import build_session
    from shopperlake.jobs import run

    if not args.reuse:
        shutil.rmtree(work, ignore_errors=True)
    lake_root = str(work / "lake")
    cfg = load_config("local", ["spark.conf.spark.ui.enabled=false"])
    spark = build_session(cfg, "report-forecast-completejourney")
    common = ["--lake", lake_root, "--log-level", "WARNING",
              "--set", "spark.conf.spark.ui.enabled=false"]  # fmt: skip
    seconds: dict[str, float] = {}
    closed = [d for d in args.closed_days.split(",") if d]
    steps = [("ingest", ["--source", "completejourney", "--as-of", "2017-12-31"]),
             ("backtest", ["--set", f"forecast.closed_days={closed}"])]  # fmt: skip
    for job, extra in steps if not args.reuse else steps[1:]:
        started = time.monotonic()
        assert run(job, [*common, *extra], spark=spark) == 0, job
        seconds[job] = time.monotonic() - started
    lake = Lake.from_config(spark, cfg, lake_root)
    ingest = lake.read("meta.runs").where("job = 'ingest'").orderBy(F.desc("started_at")).first()
    assert ingest is not None and ingest.metrics is not None
    print("\nThe Complete Journey ingest: " + ", ".join(
        f"{k} {int(v):,}" for k, v in sorted(ingest.metrics.items()) if ".rows_" in k))  # fmt: skip
    reasons = lake.read("bronze.quarantine").groupBy("entity", "reason").count().collect()
    print("quarantined: " + ", ".join(f"{r.entity} {r.reason} {r['count']:,}" for r in reasons))
    print("job seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
    spark.stop()
    if not args.skip_scaling:
        fits = {c: [fit_seconds(lake_root, c) for _ in range(args.repeats)] for c in (1, 2)}
        one, two = statistics.median(fits[1]), statistics.median(fits[2])
        print(
            f"local-model fit, 190 categories, one origin (forecast as of {AS_OF}): "
            f"1 core {one:.0f} s, 2 cores {two:.0f} s, speed-up {one / two:.2f}x "
            f"(median of {args.repeats})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
