"""Does leaving bots out change the recommender? Item-CF, EASE, their blend and popularity
ranked for the planted normal users, fitted with and without bot traffic.

Generates a synthetic shop with planted abuse (``--abuse-share`` of the human users, plus the
generator's 0.5 % scraper bots), ingests it, runs ``detect_anomalies`` as of the holdout start
(the day a training job would read its alerts), then fits every list three times on the
interactions up to that day: every user's events, without the users alerted as ``bot`` (what
``anomalies.exclude: [bot]`` leaves out) and without the planted bots (the oracle). The
evaluation users are the human users without planted abuse who bought in the 14-day holdout;
recall@10 and NDCG@10 per user, paired bootstrap differences (variant minus all traffic) over
them. Also in ``gold.model_metrics`` (model ``bot_exclusion``, split ``bot_exclusion``).
EASE uses one λ (``--ease-lambda``); the blend is item-CF + EASE with rrf weights 1:1.

    .venv/bin/python bench/report_bot_exclusion.py [--users 20000 --items 2000 --days 120]
        [--abuse-share 0.01] [--bot-share 0.005] [--alert-budget 0.1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work" / "bot_exclusion"
START = dt.date(2024, 1, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--abuse-share", type=float, default=0.01)
    parser.add_argument("--bot-share", type=float, default=0.005)
    parser.add_argument("--ease-lambda", type=float, default=200.0)
    parser.add_argument(
        "--alert-budget",
        type=float,
        default=None,
        help="anomalies.users.budget for detect_anomalies (default: config)",
    )
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    os.environ.setdefault("PYSPARK_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    from pyspark.sql import functions as F

    from shopperlake.core.config import load_config
    from shopperlake.core.lake import Lake
    from shopperlake.core.session import build_session
    from shopperlake.jobs import run
    from shopperlake.rec.exclusion_impact import BASE, METRICS, exclusion_impact
    from shopperlake.rec.job import catalog_as_of
    from shopperlake.rec.params import RecParams
    from shopperlake.training.model_metrics import (
        BootstrapSettings,
        comparison_rows,
        comparison_table,
        write_metrics,
    )

    cfg = load_config("local", ["spark.conf.spark.ui.enabled=false"])
    spark = build_session(cfg, "report-bot-exclusion")
    started = time.monotonic()
    shutil.rmtree(WORK, ignore_errors=True)
    raw, lake_dir = WORK / "raw", WORK / "lake"
    common = ["--lake", str(lake_dir), "--log-level", "WARNING"]
    last = START + dt.timedelta(days=args.days - 1)
    params = RecParams.from_config(cfg.require("recommender"))
    cutoff = last - dt.timedelta(days=params.holdout_days)
    gen = ["--users", str(args.users), "--items", str(args.items), "--days", str(args.days),
           "--seed", str(args.seed), "--start-date", str(START), "--output", str(raw),
           "--abuse-share", str(args.abuse_share),
           f"--set=generate.bot_share={args.bot_share}"]  # fmt: skip
    assert run("generate", [*common, *gen], spark) == 0
    assert run("ingest", [*common, "--source", "synthetic", "--input", str(raw)], spark) == 0
    budget = [f"--set=anomalies.users.budget={args.alert_budget}"] if args.alert_budget else []
    assert run("detect_anomalies", [*common, "--as-of", str(cutoff), *budget], spark) == 0

    lake = Lake.from_config(spark, cfg, str(lake_dir))
    events = lake.read("bronze.events").cache()
    catalog = catalog_as_of(lake.read("bronze.items"), events, cutoff).cache()
    truth = spark.read.json(str(raw / "truth" / "users")).select("user_id", "anomaly_type")
    alerts = lake.read("gold.user_anomalies").where(
        (F.col("as_of") == F.lit(cutoff)) & (F.col("anomaly_type") == "bot")
    )
    planted_bots = truth.where(F.col("anomaly_type") == "bot").select("user_id")
    normal = events.select("user_id").distinct().join(truth, "user_id", "left_anti")
    before = events.where(F.col("event_date") <= F.lit(cutoff))
    bot_events = before.join(planted_bots, "user_id").count()
    print(f"\n{events.count():,} events; {before.count():,} up to the cutoff {cutoff}, "
          f"{bot_events:,} of them by {planted_bots.count():,} planted bots; "
          f"{alerts.count():,} users alerted as bot as of {cutoff}")  # fmt: skip
    impact = exclusion_impact(
        spark, events, catalog, params, cutoff, last, normal,
        {"without alerted bots": alerts.select("user_id"), "without planted bots": planted_bots},
        args.ease_lambda, BootstrapSettings.from_config(cfg),
    )  # fmt: skip
    print(f"\n{impact.users:,} evaluation users (planted normal, bought in ({cutoff}, {last}])")
    at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = []
    for (source, variant), comparison in impact.comparisons.items():
        print(f"\n{source}: {variant} vs {BASE}")
        print(comparison_table(comparison, list(METRICS)))
        rows += comparison_rows("bot_exclusion", str(cutoff), comparison, "report", at)
    write_metrics(lake, rows)
    print(f"\n{time.monotonic() - started:.0f} s in all")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
