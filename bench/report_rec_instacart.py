"""Recommender on real data (Instacart sample, 593 users): next-basket protocol.

Ingests the Instacart order lines into a fresh lake and runs ``train --model recommender``
with ``split.protocol=last_order``: every source and the hybrid are fitted on each user's
earlier orders and ranked against the products of the user's last order (binary relevance).
Re-orders are the bulk of a basket, so already-bought items stay recommendable
(``exclude_bought=false``); the sample has no categories, so the per-category cap is off.
EASE runs on the products bought by at least 3 users; its λ is tuned on an inner per-user
random split of the training interactions. Prints the
side-by-side table (also in gold.model_metrics, split ``last_order``).

    .venv/bin/python bench/report_rec_instacart.py
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work" / "instacart_rec"
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


def main() -> int:
    os.environ.setdefault("PYSPARK_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    from shopperlake.config import load_config
    from shopperlake.ingest.job import main as ingest
    from shopperlake.ml.train import main as train
    from shopperlake.session import build_session

    shutil.rmtree(WORK, ignore_errors=True)
    lake_root = str(WORK / "lake")
    cfg = load_config("local", ["spark.conf.spark.ui.enabled=false"])
    spark = build_session(cfg, "report-rec-instacart")
    common = ["--lake", lake_root, "--log-level", "WARNING"]
    sets = [f"--set={s}" for s in SETTINGS]
    started = time.monotonic()
    assert ingest([*common, "--source", "instacart"], spark=spark) == 0
    code = train([*common, *sets, "--model", "recommender"], spark=spark)
    print(f"\ntrain exit {code}; {time.monotonic() - started:.0f} s in all")
    spark.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
