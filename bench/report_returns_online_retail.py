"""Return prediction on real data: UCI Online Retail II, the issue's out-of-time protocol.

Ingests the whole file (``make data``) into a fresh lake, prints where every line went
(events, or quarantine by reason), builds the return training set as of 2011-12-08 with the
test on purchases 2011-06-01 .. 2011-09-09 (training purchases before 2011-03-03, so every
training label window closes before the test starts), trains the DNN (2 Horovod processes)
against MLlib GBT, logistic regression and the rule baselines, and scores the lines still open
on 2011-12-08. The figures (customer-level bootstrap, 95 %) are the ones the train job prints
and writes to ``gold.model_metrics``.

With ``--sequence`` the train step also fits the sequence-encoder candidate and its blend with
the DNN (``returns.sequence.enabled``); ``--set KEY=VALUE`` passes more settings to train.
With ``--reuse`` and either of them, only the train and score steps run again on the kept
lake (score uses the current version: a retrain that is not promoted leaves it).

    .venv/bin/python bench/report_returns_online_retail.py [--reuse] [--sequence]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AS_OF, TEST_START = "2011-12-08", "2011-06-01"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true", help="keep the lake of a previous run")
    parser.add_argument(
        "--sequence",
        action="store_true",
        help="train the sequence head and the blend too (returns.sequence)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override for the train step (repeatable)",
    )
    args = parser.parse_args()
    work = REPO / "bench" / "work" / "online_retail_returns"
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
    spark = build_session(cfg, "report-returns-online-retail")
    common = ["--lake", lake_root, "--log-level", "WARNING",
              "--set", "spark.conf.spark.ui.enabled=false"]  # fmt: skip
    model = ["--model", "returns", "--as-of", AS_OF]
    sets = [*(["returns.sequence.enabled=true"] if args.sequence else []), *args.set]
    train_sets = [f"--set={kv}" for kv in sets]
    steps = [
        ("ingest", ["--source", "online_retail", "--as-of", AS_OF]),
        ("build_training_set", [*model, "--test-start", TEST_START]),
        ("train", ["--model", "returns", *train_sets]),
        ("score", model),
    ]
    seconds: dict[str, float] = {}
    if args.reuse:  # the lake as it is; train (and score the current version) again only
        # when train's settings change
        steps = [s for s in steps if s[0] in ("train", "score") and train_sets]
    for job, extra in steps:
        started = time.monotonic()
        assert run(job, [*common, *extra], spark=spark) == 0, job
        seconds[job] = time.monotonic() - started
    lake = Lake.from_config(spark, cfg, lake_root)
    runs = lake.read("meta.runs").where("job = 'ingest'").orderBy(F.desc("started_at")).first()
    assert runs is not None and runs.metrics is not None
    print("\nOnline Retail II ingest (events): "
          + ", ".join(f"{k.split('.', 1)[1]} {int(v):,}" for k, v in sorted(runs.metrics.items())
                      if k.startswith("events.rows_")))  # fmt: skip
    reasons = (
        lake.read("bronze.quarantine").where("entity = 'events'")
        .select(F.explode(F.split("reason", "; ")).alias("reason")).groupBy("reason").count()
        .orderBy(F.desc("count")).collect()
    )  # fmt: skip
    print("quarantined lines by reason (a line may have several):")
    for r in reasons:
        print(f"  {r.reason:<40}{r['count']:>9,}")
    types = lake.read("bronze.events").groupBy("event_type").count().collect()
    print("events: " + ", ".join(f"{r.event_type} {r['count']:,}" for r in types))
    risk = lake.read("gold.return_risk").where(F.col("as_of_date") == F.lit(AS_OF))
    bands = {r.risk_band: r["count"] for r in risk.groupBy("risk_band").count().collect()}
    print(f"gold.return_risk as of {AS_OF}: {risk.count():,} open lines, bands {bands}")
    risk.orderBy(F.desc("probability")).select(
        "order_id", "item_id", "probability", "order_probability", "top_reasons"
    ).show(5, truncate=False)
    if seconds:
        print("wall time per job: " + ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items()))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
