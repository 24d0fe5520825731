"""Churn on real data (CDNOW): the Horovod DNN and the MLlib baselines against BG/NBD.

Ingests CDNOW into a fresh lake, builds the churn training set with cutoffs in 1997 and the
out-of-time test at 1998-03-31 (horizon 90 days, complete by 1998-06-30), trains (2 Horovod
processes), then fits the classic BG/NBD model (lifetimes.BetaGeoFitter) on the same
calibration period (all transactions up to the test cutoff) and scores the same test users
by their expected number of purchases in the horizon and by P(alive). Prints test ROC-AUCs.

    .venv/bin/python bench/report_churn_cdnow.py
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work" / "cdnow_churn"
AS_OF = "1998-06-30"
CUTOFFS = "1997-06-30,1997-09-30,1997-12-31,1998-03-31"
TEST_CUTOFF = dt.date(1998, 3, 31)
HORIZON, LOOKBACK = 90, 180
MODEL = [
    "--set", f"models.churn.horizon_days={HORIZON}",
    "--set", f"models.churn.lookback_days={LOOKBACK}",
    "--set", "spark.conf.spark.ui.enabled=false",
]  # fmt: skip


def main() -> int:
    os.environ.setdefault("PYSPARK_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    from lifetimes import BetaGeoFitter
    from lifetimes.utils import summary_data_from_transaction_data

    from shopperlake.config import load_config
    from shopperlake.evaluation import roc_auc
    from shopperlake.ingest.job import main as ingest
    from shopperlake.lake import Lake
    from shopperlake.ml.train import main as train
    from shopperlake.ml.training_set import main as build_training_set
    from shopperlake.session import build_session

    reuse = "--reuse" in sys.argv  # keep the trained lake of a previous run, redo BG/NBD only
    if not reuse:
        shutil.rmtree(WORK, ignore_errors=True)
    lake_root = str(WORK / "lake")
    cfg = load_config("local", ["spark.conf.spark.ui.enabled=false"])
    spark = build_session(cfg, "report-churn-cdnow")
    common = ["--lake", lake_root, "--log-level", "WARNING", *MODEL]
    started = time.monotonic()
    if not reuse:
        assert ingest([*common, "--source", "cdnow"], spark=spark) == 0
        assert (
            build_training_set(
                [*common, "--model", "churn", "--as-of", AS_OF, "--cutoffs", CUTOFFS], spark=spark
            )
            == 0
        )
        assert train([*common, "--model", "churn", "--as-of", AS_OF], spark=spark) == 0
    lake = Lake.from_config(spark, cfg, lake_root)
    metrics = lake.read("gold.model_metrics").where("metric = 'roc_auc' AND split = 'test'")
    aucs = {r["algorithm"]: r["value"] for r in metrics.collect()}

    # BG/NBD on the calibration period: every transaction on or before the test cutoff.
    tx = (
        lake.read("bronze.events")
        .where("event_type = 'purchase'")
        .select("user_id", "event_date", "price", "quantity")
        .toPandas()
    )
    tx["spend"] = tx["price"] * tx["quantity"]
    calib = tx[tx["event_date"] <= TEST_CUTOFF]
    summary = summary_data_from_transaction_data(
        calib,
        "user_id",
        "event_date",
        monetary_value_col="spend",
        observation_period_end=pd.Timestamp(TEST_CUTOFF),
        freq="D",
    )
    bgf = BetaGeoFitter(penalizer_coef=0.0)
    bgf.fit(summary["frequency"], summary["recency"], summary["T"])
    test = lake.read("gold.training_sets").where("model = 'churn' AND split = 'test'")
    test_pd = test.select("user_id", "label").toPandas().set_index("user_id")
    s = summary.loc[test_pd.index]
    expected = bgf.conditional_expected_number_of_purchases_up_to_time(
        HORIZON, s["frequency"], s["recency"], s["T"]
    )
    alive = bgf.conditional_probability_alive(s["frequency"], s["recency"], s["T"])
    y = test_pd["label"].to_numpy()
    aucs["bgnbd_expected_purchases"] = roc_auc(y, -np.asarray(expected, dtype=float))
    aucs["bgnbd_p_alive"] = roc_auc(y, 1 - np.asarray(alive, dtype=float))
    elapsed = time.monotonic() - started
    print()
    print(
        f"CDNOW churn, out-of-time test cutoff {TEST_CUTOFF} (horizon {HORIZON} d, lookback "
        f"{LOOKBACK} d): {len(y):,} test users, churn rate {y.mean():.3f}"
    )
    for name in ("dnn", "logreg", "gbt", "bgnbd_expected_purchases", "bgnbd_p_alive", "constant"):
        print(f"  {name:<26} ROC-AUC {aucs[name]:.4f}")
    print(f"(wall time {elapsed:.0f}s)")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
