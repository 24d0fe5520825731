"""Recommender on real data (Instacart sample, 593 users): next-basket protocol; and, with
``--data synthetic``, on the demo's synthetic shop (time holdout).

Ingests the Instacart order lines into a fresh lake and runs ``train --model recommender``
with ``split.protocol=last_order``: every source and the hybrid are fitted on each user's
earlier orders and ranked against the products of the user's last order (binary relevance).
Re-orders are the bulk of a basket, so already-bought items stay recommendable
(``exclude_bought=false``); the sample has no categories, so the per-category cap is off.
EASE runs on the products bought by at least 3 users. EASE λ and the blend weights
(``recommender.blend.mode: tuned``) are chosen on the same next-basket protocol one order
earlier (each user's second-to-last order predicted from the orders before it: training data
only). Prints the side-by-side table (also in gold.model_metrics, split ``last_order``).

``--data online_retail`` ingests UCI Online Retail II (``make data``), builds profiles and
segments as of 2011-12-09 and trains with the default time holdout (the last 14 days, tuned
on the 14 days before them), purchases only, already-bought items recommendable (a
wholesaler's customers re-order), the ``SETTINGS`` above otherwise.

``--data synthetic`` generates the demo's clickstream (3,000 users x 800 items x 180 days,
seed 42), ingests it, builds profiles and segments and trains with the default config (time
holdout of 14 days, tuned on the 14 days before it); ``--extra`` settings apply there too.

    .venv/bin/python bench/report_rec_instacart.py [--data instacart|online_retail|synthetic]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work" / "instacart_rec"
SYNTH_WORK = REPO / "bench" / "work" / "synthetic_rec"
RETAIL_WORK = REPO / "bench" / "work" / "online_retail_rec"
RETAIL_AS_OF = "2011-12-09"  # the file's last day
SYNTH_AS_OF = "2024-06-28"  # the demo's: start 2024-01-01 + 180 days - 1
SETTINGS = [
    "recommender.split.protocol=last_order",
    "recommender.exclude_bought=false",
    "recommender.max_per_category=20",
    "recommender.event_weights={purchase: 1.0}",
    "recommender.half_life_days=60",
    "recommender.ease.lambdas=[50.0, 200.0, 500.0]",
    "recommender.ease.min_users=3",
    "recommender.itemcf.max_items_per_user=100",
    "recommender.als.max_iter=10",
    "recommender.itemcf.min_support=2",
    "recommender.blend.content=0.0",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another config setting after SETTINGS, e.g. recommender.blend.twotower=1.0",
    )
    parser.add_argument(
        "--data", choices=("instacart", "online_retail", "synthetic"), default="instacart"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("PYSPARK_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    from shopperlake.core.config import load_config
    from shopperlake.core.session import build_session

    cfg = load_config("local", ["spark.conf.spark.ui.enabled=false"])
    spark = build_session(cfg, f"report-rec-{args.data}")
    started = time.monotonic()
    if args.data == "instacart":
        code = instacart(spark, [*SETTINGS, *args.extra])
    elif args.data == "online_retail":
        retail = [s for s in SETTINGS if not s.startswith("recommender.split.protocol")]
        code = online_retail(spark, [*retail, *args.extra])
    else:
        code = synthetic(spark, args.extra)
    print(f"\ntrain exit {code}; {time.monotonic() - started:.0f} s in all")
    spark.stop()
    return code


def instacart(spark: SparkSession, settings: list[str]) -> int:
    from shopperlake.ingest.job import main as ingest
    from shopperlake.rec.job import train_main as train

    shutil.rmtree(WORK, ignore_errors=True)
    common = ["--lake", str(WORK / "lake"), "--log-level", "WARNING"]
    sets = [f"--set={s}" for s in settings]
    assert ingest([*common, "--source", "instacart"], spark=spark) == 0
    return train([*common, *sets, "--model", "recommender"], spark=spark)


def online_retail(spark: SparkSession, settings: list[str]) -> int:
    from shopperlake.ingest.job import main as ingest
    from shopperlake.profiles.job import main as build_profiles
    from shopperlake.rec.job import train_main as train
    from shopperlake.segments.job import main as build_segments

    shutil.rmtree(RETAIL_WORK, ignore_errors=True)
    common = ["--lake", str(RETAIL_WORK / "lake"), "--log-level", "WARNING"]
    day = ["--as-of", RETAIL_AS_OF]
    sets = [f"--set={s}" for s in settings]
    assert ingest([*common, "--source", "online_retail", *day], spark=spark) == 0
    assert build_profiles([*common, *day], spark=spark) == 0
    assert build_segments([*common, *day, "--quiet"], spark=spark) == 0
    return train([*common, *sets, *day, "--model", "recommender"], spark=spark)


def synthetic(spark: SparkSession, settings: list[str]) -> int:
    from shopperlake.ingest.job import main as ingest
    from shopperlake.profiles.job import main as build_profiles
    from shopperlake.rec.job import train_main as train
    from shopperlake.segments.job import main as build_segments
    from shopperlake.synthetic.generate import main as generate

    shutil.rmtree(SYNTH_WORK, ignore_errors=True)
    raw = str(SYNTH_WORK / "raw")
    common = ["--lake", str(SYNTH_WORK / "lake"), "--log-level", "WARNING"]
    day = ["--as-of", SYNTH_AS_OF]
    gen = ["--users", "3000", "--items", "800", "--days", "180", "--seed", "42",
           "--start-date", "2024-01-01", "--output", raw]  # fmt: skip
    sets = [f"--set={s}" for s in settings]
    assert generate([*common, *gen], spark=spark) == 0
    assert ingest([*common, "--source", "synthetic", "--input", raw], spark=spark) == 0
    assert build_profiles([*common, *day], spark=spark) == 0
    assert build_segments([*common, *day, "--quiet"], spark=spark) == 0
    return train([*common, *sets, *day, "--model", "recommender"], spark=spark)


if __name__ == "__main__":
    sys.exit(main())
