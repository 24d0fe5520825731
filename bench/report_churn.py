"""Churn on real data (CDNOW, Online Retail II): the Horovod DNN and the MLlib baselines against
BG/NBD.

Ingests the dataset (``--data cdnow``, the default, or ``--data online_retail``: ``make data``)
into a fresh lake, builds the churn training set, trains (2 Horovod processes),
then fits the classic BG/NBD model (lifetimes.BetaGeoFitter) on the calibration period (every
transaction up to the test cutoff) and scores the same test users. Two designs:

CDNOW (as of 1998-06-30):

- ``--design rolling`` (default): training cutoffs 1997-06-30, 1997-09-30, 1997-12-31 and the
  out-of-time test at 1998-03-31; lookback 180 days, horizon 90 days (complete by
  1998-06-30). Every training label window ends on or before the test cutoff
  (1997-12-31 + 90 days = 1998-03-31), as ``build_training_set`` requires.
- ``--design holdout``: the calibration/holdout split of the BTYD literature (Fader, Hardie &
  Lee 2005 use the same 39 + 39 weeks): one cutoff 1997-09-30, calibration period
  1997-01-01..1997-09-30 (lookback 273 days: every CDNOW customer made a first purchase in
  Q1 1997), holdout 1997-10-01..1998-06-30 (horizon 273 days), users split train /
  validation / test by a seeded hash (``models.churn.test_share`` etc.).

Online Retail II (as of 2011-12-08, the data end on 2011-12-09), rolling only: training
cutoffs 2010-09-11, 2010-12-11, 2011-03-11, 2011-06-11 and the out-of-time test at 2011-09-09
(+ 90 days = 2011-12-08); lookback 180 days, horizon 90 days; every training label window ends
on or before the test cutoff (2011-06-11 + 90 days = 2011-09-09).

Scores compared on the test users: ROC-AUC of everything; Brier and expected calibration
error of the probabilities (calibrated and raw models; BG/NBD's probability of no purchase in
the horizon, ``1 - P(alive) + P(alive) * ((alpha + T) / (alpha + T + t)) ** (r + x)``: a live
customer's rate has the Gamma(r + x, alpha + T) posterior, and BG/NBD customers drop out only
right after a purchase).

With ``--sequence`` the training job also fits the sequence head (the SASRec encoder over each
row's latest events, ``models.churn.sequence``) and its blend with the DNN; the report then
pairs the blend with the head and with the DNN too.

``--model propensity`` (CDNOW): the same comparison for purchase propensity (``PROPENSITY``
below), BG/NBD's probability of at least one purchase in the horizon in place of none.

    .venv/bin/python bench/report_churn.py [--data cdnow|online_retail]
        [--design rolling|holdout] [--model churn|propensity] [--sequence] [--set KEY=VALUE]
        [--reuse]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Design:
    name: str
    test_cutoff: dt.date
    horizon: int
    lookback: int
    cutoffs: str

    def model_args(self, model: str = "churn") -> list[str]:
        return [
            "--set", f"models.{model}.horizon_days={self.horizon}",
            "--set", f"models.{model}.lookback_days={self.lookback}",
            "--set", f"models.{model}.design={self.name}",
        ]  # fmt: skip


@dataclass(frozen=True)
class Data:
    label: str
    source: str
    as_of: str
    designs: dict[str, Design]
    ingest_args: tuple[str, ...] = ()


MODELS = ("dnn", "dnn_raw", "logreg", "logreg_raw", "gbt", "gbt_raw", "sequence", "sequence_raw",
          "blend", "blend_raw")  # fmt: skip
DESIGNS = {
    "rolling": Design(
        "rolling", dt.date(1998, 3, 31), 90, 180, "1997-06-30,1997-09-30,1997-12-31,1998-03-31"
    ),
    "holdout": Design("holdout", dt.date(1997, 9, 30), 273, 273, "1997-09-30"),
}
DATA = {
    "cdnow": Data("CDNOW", "cdnow", "1998-06-30", DESIGNS),
    "online_retail": Data(
        "Online Retail II",
        "online_retail",
        "2011-12-08",
        {
            "rolling": Design(
                "rolling",
                dt.date(2011, 9, 9),
                90,
                180,
                "2010-09-11,2010-12-11,2011-03-11,2011-06-11,2011-09-09",
            )
        },
        ("--as-of", "2011-12-08"),
    ),
}


# Purchase propensity on CDNOW (--model propensity): the model's own horizon and lookback
# (models.propensity: a purchase in the next 14 days among the users who bought in the last
# 30), cutoffs 14 days apart through the first half of 1998, the last one the out-of-time test
# (1998-06-16 + 14 days = 1998-06-30, the data's end).
PROPENSITY = {
    "cdnow": Design(
        "rolling", dt.date(1998, 6, 16), 14, 30,
        ",".join(str(dt.date(1998, 6, 16) - dt.timedelta(days=14 * k)) for k in range(11, -1, -1)),
    )
}  # fmt: skip


def bgnbd_p_no_purchase(bgf: Any, t: float, x: Any, recency: Any, age: Any) -> np.ndarray:
    """BG/NBD probability of no purchase in the next ``t`` days given (x, recency, T)."""
    r, alpha = bgf.params_["r"], bgf.params_["alpha"]
    x, recency, age = (np.asarray(v, dtype=float) for v in (x, recency, age))
    alive = np.asarray(bgf.conditional_probability_alive(x, recency, age), dtype=float)
    quiet_if_alive = ((alpha + age) / (alpha + age + t)) ** (r + x)
    return np.asarray(1.0 - alive + alive * quiet_if_alive, dtype=float)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=sorted(DATA), default="cdnow")
    parser.add_argument("--design", choices=sorted(DESIGNS), default="rolling")
    parser.add_argument("--model", choices=("churn", "propensity"), default="churn")
    parser.add_argument(
        "--reuse", action="store_true", help="keep the trained lake of a previous run"
    )
    parser.add_argument(
        "--sequence", action="store_true", help="also the sequence head and its blend"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="a config override for the jobs, e.g. models.churn.sequence.step=day",
    )  # fmt: skip
    args = parser.parse_args()
    data = DATA[args.data]
    if args.design not in data.designs:
        parser.error(f"--data {args.data} has only the designs {sorted(data.designs)}")
    design = data.designs[args.design]
    model = args.model
    if model == "propensity":
        if args.data not in PROPENSITY or args.design != "rolling":
            parser.error(f"--model propensity is measured on {sorted(PROPENSITY)}, rolling only")
        design = PROPENSITY[args.data]
    work = REPO / "bench" / "work" / f"{data.source}_{model}_{design.name}"
    os.environ.setdefault("PYSPARK_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    from lifetimes import BetaGeoFitter
    from lifetimes.utils import summary_data_from_transaction_data

    from shopperlake.churn.train import main as train
    from shopperlake.churn.training_set import main as build_training_set
    from shopperlake.core.config import load_config
    from shopperlake.core.lake import Lake
    from shopperlake.core.session import build_session
    from shopperlake.ingest.job import main as ingest
    from shopperlake.training.bootstrap import metric_stat
    from shopperlake.training.metrics import brier, expected_calibration_error, roc_auc
    from shopperlake.training.model_metrics import BootstrapSettings, compare, comparison_table
    from shopperlake.training.registry import Registry

    if not args.reuse:
        shutil.rmtree(work, ignore_errors=True)
    lake_root = str(work / "lake")
    cfg = load_config("local", ["spark.conf.spark.ui.enabled=false"])
    spark = build_session(cfg, f"report-churn-{data.source}")
    common = [
        "--lake", lake_root, "--log-level", "WARNING", *design.model_args(model),
        "--set", "spark.conf.spark.ui.enabled=false",
        *(["--set", f"models.{model}.sequence.enabled=true"] if args.sequence else []),
        *(a for kv in args.set for a in ("--set", kv)),
    ]  # fmt: skip
    started = time.monotonic()
    if not args.reuse:
        assert ingest([*common, "--source", data.source, *data.ingest_args], spark=spark) == 0
        day = ["--as-of", data.as_of]
        build = [*common, "--model", model, *day, "--cutoffs", design.cutoffs]
        assert build_training_set(build, spark=spark) == 0
        assert train([*common, "--model", model, *day], spark=spark) == 0
    lake = Lake.from_config(spark, cfg, lake_root)
    latest = lake.read("gold.model_metrics").where(f"model = '{model}'").agg({"version": "max"})
    version = latest.first()[0]  # type: ignore[index]
    mv = Registry.from_config(cfg, lake.root).get(model, version)
    predictions = pd.read_csv(mv.path / "predictions_test.csv", dtype={"user_id": str})

    # BG/NBD on the calibration period: every transaction on or before the test cutoff.
    tx = (
        lake.read("bronze.events")
        .where("event_type = 'purchase'")
        .select("user_id", "event_date", "price", "quantity")
        .toPandas()
    )
    tx["spend"] = tx["price"] * tx["quantity"]
    calib = tx[tx["event_date"] <= design.test_cutoff]
    summary = summary_data_from_transaction_data(
        calib,
        "user_id",
        "event_date",
        monetary_value_col="spend",
        observation_period_end=pd.Timestamp(design.test_cutoff),
        freq="D",
    )
    bgf = BetaGeoFitter(penalizer_coef=0.0)
    bgf.fit(summary["frequency"], summary["recency"], summary["T"])
    sets = lake.read("gold.training_sets").where(f"model = '{model}'")
    base_rate = float(sets.where("split = 'train'").agg({"label": "avg"}).first()[0])  # type: ignore[index]
    predictions = predictions.set_index("user_id")
    s = summary.loc[predictions.index]
    y = predictions["label"].to_numpy(dtype=int)
    expected = bgf.conditional_expected_number_of_purchases_up_to_time(
        design.horizon, s["frequency"], s["recency"], s["T"]
    )
    alive = bgf.conditional_probability_alive(s["frequency"], s["recency"], s["T"])
    quiet = bgnbd_p_no_purchase(bgf, design.horizon, s["frequency"], s["recency"], s["T"])
    # churn: the probability of no purchase; propensity: of at least one
    buys = model == "propensity"
    probabilities = {
        **{a: predictions[a].to_numpy(dtype=float) for a in MODELS if a in predictions},
        "bgnbd_p_purchase" if buys else "bgnbd_p_no_purchase": 1 - quiet if buys else quiet,
        "constant": np.full(y.size, base_rate),
    }
    sign = 1 if buys else -1
    rankings = {
        "bgnbd_expected_purchases": sign * np.asarray(expected, dtype=float),
        "bgnbd_p_alive": np.asarray(alive, dtype=float) if buys else 1 - np.asarray(alive, float),
    }
    fns = {"roc_auc": roc_auc, "brier": brier, "ece": expected_calibration_error}
    stats = {a: {m: metric_stat(f, y, p) for m, f in fns.items()} for a, p in probabilities.items()}
    stats.update({a: {"roc_auc": metric_stat(roc_auc, y, p)} for a, p in rankings.items()})
    settings = BootstrapSettings.from_config(cfg)
    comparison = compare(stats, y.size, "dnn", "test", settings)
    elapsed = time.monotonic() - started
    print()
    print(
        f"{data.label} {model}, {design.name} design, test cutoff {design.test_cutoff} (horizon "
        f"{design.horizon} d, lookback {design.lookback} d): {len(y):,} test users, label rate "
        f"{y.mean():.3f}; model {version}; {settings.resamples} bootstrap resamples of users"
    )
    print(comparison_table(comparison, list(fns)))
    if "blend" in stats:
        pair = {a: stats[a] for a in ("blend", "sequence", "dnn")}
        print(comparison_table(compare(pair, y.size, "blend", "test", settings), list(fns)))
    print(f"(wall time {elapsed:.0f}s)")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
