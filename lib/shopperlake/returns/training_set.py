"""``build_training_set --model returns`` (job ``build_return_training_set``): one labelled row
per purchase line, split out of time.

With ``--as-of D`` and horizon H, a line bought on day ``d`` has a closed label window when
``d + H <= D``. Test: lines bought in ``[test_start, D - H]`` (``--test-start``, default the
last ``returns.test_days`` such days). Training and validation: lines whose label window ends
before the test starts (``d + H < test_start``); lines in between are dropped, never
truncated. Validation takes a seeded-hash share of the *customers* of that period, so no
customer is on both sides of the train/validation line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shopperlake.core.cli import Job, JobContext, parse_date
from shopperlake.core.errors import InputError
from shopperlake.core.exclusion import without_flagged
from shopperlake.profiles.features import attributes_as_of, point_in_time
from shopperlake.returns.features import (
    feature_maps,
    history_features,
    order_features,
    split_events,
    with_labels,
)
from shopperlake.returns.spec import MODEL, ReturnsSpec, returns_spec

log = logging.getLogger(__name__)
TABLE = "gold.return_training_set"


def windows(as_of: dt.date, spec: ReturnsSpec, test_start: dt.date | None) -> dict[str, dt.date]:
    """``train_end`` (last purchase day of train/validation), ``test_start``, ``test_end``."""
    test_end = as_of - dt.timedelta(days=spec.horizon_days)
    start = test_start or test_end - dt.timedelta(days=spec.test_days - 1)
    if start > test_end:
        raise InputError(
            f"--test-start {start} is after {test_end}, the last purchase day whose "
            f"{spec.horizon_days}-day label window is closed by --as-of {as_of}"
        )
    train_end = start - dt.timedelta(days=spec.horizon_days + 1)
    return {"train_end": train_end, "test_start": start, "test_end": test_end}


def line_rows(events: DataFrame, users: DataFrame, as_of: dt.date, spec: ReturnsSpec) -> DataFrame:
    """Every purchase line before the end of ``as_of`` with label and feature maps."""
    purchases, returns = split_events(point_in_time(events, as_of))
    lines = history_features(purchases, returns, spec.item_prior_lines)
    lines = with_labels(order_features(lines), returns, spec.horizon_days)
    countries = attributes_as_of(users, as_of, "user_id").select("user_id", "country")
    return feature_maps(lines, countries)


def assign_split(rows: DataFrame, w: dict[str, dt.date], spec: ReturnsSpec) -> DataFrame:
    day = F.to_date("ts")
    bucket = F.pmod(F.xxhash64(F.lit(f"returns-{spec.split_seed}"), "user_id"), F.lit(10_000))
    split = (
        F.when(day.between(F.lit(w["test_start"]), F.lit(w["test_end"])), "test")
        .when(day <= F.lit(w["train_end"]), F.when(
            bucket < F.lit(int(spec.validation_share * 10_000)), "validation"
        ).otherwise("train"))
    )  # fmt: skip
    return rows.withColumn("split", split).where(F.col("split").isNotNull())


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=MODEL, choices=[MODEL])
    parser.add_argument(
        "--test-start",
        dest="test_start",
        default=None,
        help="first purchase day of the test split (default: see the module doc)",
    )


def body(ctx: JobContext) -> None:
    if ctx.as_of is None:
        raise InputError("build_training_set --model returns needs --as-of")
    spec = returns_spec(ctx.cfg)
    start = parse_date(ctx.args.test_start, "--test-start") if ctx.args.test_start else None
    w = windows(ctx.as_of, spec, start)
    events = ctx.lake.read("bronze.events")
    events = without_flagged(events, ctx.lake, ctx.cfg, ctx.as_of, ctx.run.metrics)
    users = ctx.lake.read("bronze.users")
    rows = assign_split(line_rows(events, users, ctx.as_of, spec), w, spec).select(
        F.lit(ctx.as_of).alias("as_of_date"),
        F.col("event_id").alias("line_id"),
        "order_id", "user_id", "item_id", "ts", "label", "split", "numeric", "categorical",
        F.lit(ctx.run.run_id).alias("run_id"),
    ).cache()  # fmt: skip
    stats = {
        (r["split"], r["label"]): r["count"]
        for r in rows.groupBy("split", "label").count().collect()
    }
    ctx.lake.overwrite_where(TABLE, rows, {"as_of_date": ctx.as_of})
    rows.unpersist()
    ctx.run.rows_written = sum(stats.values())
    for (split, label), n in sorted(stats.items()):
        ctx.run.metrics[f"{split}.label{label}"] = float(n)
    for name, day in w.items():
        ctx.run.metrics[f"{name}.days_since_epoch"] = float((day - dt.date(1970, 1, 1)).days)
    log.info("return training set as of %s (%s): %s", ctx.as_of, w, dict(sorted(stats.items())))
    print(
        f"return training set as of {ctx.as_of}: train/validation lines bought up to "
        f"{w['train_end']}, test {w['test_start']} .. {w['test_end']}; rows "
        + ", ".join(f"{s} label={lab}: {n}" for (s, lab), n in sorted(stats.items()))
    )


BUILD_RETURN_TRAINING_SET = Job(
    name="build_return_training_set",
    description="Label every purchase line (returned within H days?) with point-in-time "
    "features and an out-of-time split into gold.return_training_set.",
    add_args=add_args,
    body=body,
    reads=("bronze.events", "bronze.users", "gold.user_anomalies"),
    writes=(TABLE,),
)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return BUILD_RETURN_TRAINING_SET.main(argv, spark)
