"""``score --model returns`` (job ``score_returns``): ``gold.return_risk`` for an as-of date.

Open order lines are those bought in the ``H`` days up to the end of ``--as-of`` and not
returned by then: their label window is still running. Each gets the current model's
calibrated probability of being returned within ``H`` days of its purchase, a band
(``returns.risk_bands``), its order's risk (the max over the order's open lines) and the
features that push the DNN's score up most.

The probability comes from the scorer the version was trained and promoted with
(``returns.score_with`` at train time, kept in its ``params.json``): the DNN, or the
``ensemble``, the mean of its members' calibrated probabilities (the DNN and the saved MLlib
models, each with its own calibrator), exactly as train evaluated it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from shopperlake.churn import baselines
from shopperlake.churn.dnn import predict_column
from shopperlake.churn.features import FeatureTransform
from shopperlake.churn.score import calibrated, load_calibrator, load_dnn, risk_band
from shopperlake.core.cli import Job, JobContext
from shopperlake.core.errors import InputError
from shopperlake.returns.spec import MODEL, returns_spec
from shopperlake.returns.training_set import line_rows
from shopperlake.training.registry import Registry

log = logging.getLogger(__name__)
TABLE = "gold.return_risk"


def open_lines(rows: DataFrame, as_of: dt.date, horizon_days: int) -> DataFrame:
    """Lines bought in the ``horizon_days`` days ending with ``as_of`` and not returned by its
    end (``label`` computed with returns up to then)."""
    first = as_of - dt.timedelta(days=horizon_days - 1)
    day = F.to_date("ts")
    return rows.where((day >= F.lit(first)) & (day <= F.lit(as_of)) & (F.col("label") == 0))


def with_order_risk(scored: DataFrame) -> DataFrame:
    order = Window.partitionBy(F.coalesce("order_id", "event_id"))
    return scored.withColumn("order_probability", F.max("probability").over(order))


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=MODEL, choices=[MODEL])
    parser.add_argument("--version", default=None, help="model version (default: current)")


def body(ctx: JobContext) -> None:
    if ctx.as_of is None:
        raise InputError("score --model returns needs --as-of")
    spec = returns_spec(ctx.cfg)
    registry = Registry.from_config(ctx.cfg, ctx.lake.root)
    mv = registry.get(MODEL, ctx.args.version)
    transform = FeatureTransform.from_json((mv.path / "transform.json").read_text())
    rows = line_rows(ctx.lake.read("bronze.events"), ctx.lake.read("bronze.users"), ctx.as_of, spec)
    lines = transform.apply(open_lines(rows, ctx.as_of, spec.horizon_days)).select(
        "event_id", "order_id", "user_id", "item_id", "ts", "features"
    )
    params = mv.read_json("params.json")
    ensemble = params.get("score_with") == "ensemble"
    members = list(params.get("ensemble") or []) if ensemble else ["dnn"]
    for algo in members:  # the MLlib members first: they read ``features``
        if algo != "dnn":
            model = baselines.load(algo, mv.path / f"{algo}.mllib")
            lines = baselines.predict(model, lines, f"score_{algo}")
    scored = predict_column(ctx.spark, lines, load_dnn(mv), reasons=transform.output_names)
    probabilities = [
        calibrated(F.col("score"), load_calibrator(mv))
        if algo == "dnn"
        else calibrated(F.col(f"score_{algo}"), load_calibrator(mv, f"calibration_{algo}.json"))
        for algo in members
    ]
    if not probabilities:
        raise InputError(f"model {MODEL} {mv.version}: params.json names no scorer")
    mean = sum(probabilities[1:], probabilities[0]) / len(probabilities)
    scored = scored.withColumn("probability", mean)
    out = with_order_risk(scored).select(
        F.lit(ctx.as_of).alias("as_of_date"),
        F.col("event_id").alias("line_id"),
        "order_id", "user_id", "item_id", "ts", "probability",
        risk_band(F.col("probability"), spec.risk_bands).alias("risk_band"),
        "order_probability", "top_reasons",
        F.lit(mv.version).alias("model_version"),
    )  # fmt: skip
    ctx.lake.overwrite_where(TABLE, out, {"as_of_date": ctx.as_of})
    bands = {
        r["risk_band"]: r["count"]
        for r in ctx.lake.read(TABLE)
        .where(F.col("as_of_date") == F.lit(ctx.as_of))
        .groupBy("risk_band")
        .count()
        .collect()
    }
    ctx.run.rows_written = sum(bands.values())
    for band, n in bands.items():
        ctx.run.metrics[f"band.{band}"] = float(n)
    print(
        f"return risk as of {ctx.as_of} (model {mv.version}): {sum(bands.values())} open "
        f"lines by band {dict(sorted(bands.items()))}"
    )


SCORE_RETURNS = Job(
    name="score_returns",
    description="Score the open order lines of an as-of date with the current return model "
    "into gold.return_risk (line and order risk, band, reasons).",
    add_args=add_args,
    body=body,
    reads=("bronze.events", "bronze.users", "registry/*"),
    writes=(TABLE,),
)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return SCORE_RETURNS.main(argv, spark)
