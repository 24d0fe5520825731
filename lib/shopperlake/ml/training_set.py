"""``build_training_set``: point-in-time labelled rows for one model → ``gold.training_sets``.

For each cutoff: the model's population and labels from ``bronze.events`` (labels.py) joined to
the ``gold.user_profiles`` snapshot as of that cutoff (built on demand when missing). The
latest cutoff is the out-of-time test set; earlier cutoffs are split into train and validation
by a hash of the user id. Every cutoff's horizon must end on or before ``--as-of``, and no
event after ``--as-of`` is read. The model's rows are replaced as a whole (idempotent).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from collections.abc import Sequence
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shopperlake.cli import JobContext, job_main, parse_date
from shopperlake.errors import InputError
from shopperlake.ml.features import profile_features
from shopperlake.ml.labels import label_users
from shopperlake.ml.spec import ModelSpec, model_spec
from shopperlake.profile_snapshots import ensure_profiles

log = logging.getLogger(__name__)


def resolve_cutoffs(raw: str | None, as_of: dt.date, spec: ModelSpec) -> list[dt.date]:
    """Explicit ``--cutoffs a,b,c`` or the configured number of monthly-ish cutoffs ending at
    the latest one whose horizon is complete by ``as_of``."""
    if raw:
        cutoffs = sorted({parse_date(c.strip(), "--cutoffs date") for c in raw.split(",") if c})
    else:
        last = as_of - dt.timedelta(days=spec.horizon_days)
        step = dt.timedelta(days=spec.cutoff_step_days)
        cutoffs = sorted(last - i * step for i in range(spec.auto_cutoffs))
    if len(cutoffs) < 2:
        raise InputError("need at least two cutoffs: earlier ones to train, the latest to test")
    late = [c for c in cutoffs if c + dt.timedelta(days=spec.horizon_days) > as_of]
    if late:
        raise InputError(
            f"cutoff {late[0]} + horizon {spec.horizon_days} days ends after --as-of {as_of}: "
            "its labels are not complete yet"
        )
    return cutoffs


def assign_split(rows: DataFrame, test_cutoff: dt.date, validation_share: float) -> DataFrame:
    """Out-of-time test at the latest cutoff; train/validation by a stable hash of the user."""
    bucket = F.pmod(F.xxhash64(F.col("user_id"), F.lit("split")), F.lit(1000))
    split = (
        F.when(F.col("cutoff") == F.lit(test_cutoff), "test")
        .when(bucket < F.lit(int(round(validation_share * 1000))), "validation")
        .otherwise("train")
    )
    return rows.withColumn("split", split)


def training_rows(
    events: DataFrame, profiles: DataFrame, cutoff: dt.date, spec: ModelSpec
) -> DataFrame:
    """Labelled rows of one cutoff: population label + that cutoff's profile features."""
    labels = label_users(events, cutoff, spec)
    feats = profile_features(profiles, spec)
    return labels.join(feats, "user_id", "inner")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model name in config (churn, propensity)")
    parser.add_argument("--cutoffs", default=None, help="comma-separated YYYY-MM-DD dates")


def body(ctx: JobContext) -> None:
    if ctx.as_of is None:
        raise InputError("build_training_set needs --as-of (the day whose data is complete)")
    spec = model_spec(ctx.cfg, ctx.args.model)
    cutoffs = resolve_cutoffs(ctx.args.cutoffs, ctx.as_of, spec)
    events = ctx.lake.read("bronze.events").where(F.col("event_date") <= F.lit(ctx.as_of))
    parts = []
    for cutoff in cutoffs:
        profiles = ensure_profiles(ctx, cutoff)
        parts.append(training_rows(events, profiles, cutoff, spec))
    rows = assign_split(reduce(DataFrame.unionByName, parts), cutoffs[-1], spec.validation_share)
    rows = rows.withColumns({"model": F.lit(spec.name), "run_id": F.lit(ctx.run.run_id)})
    rows = rows.cache()
    stats = {
        (r["split"], r["label"]): r["count"]
        for r in rows.groupBy("split", "label").count().collect()
    }
    ctx.lake.overwrite_where("gold.training_sets", rows, {"model": spec.name})
    rows.unpersist()
    total = sum(stats.values())
    ctx.run.rows_written = total
    for (split, label), n in sorted(stats.items()):
        ctx.run.metrics[f"{split}.label{label}"] = float(n)
    log.info(
        "training set %s: %d rows over cutoffs %s; %s",
        spec.name,
        total,
        ", ".join(map(str, cutoffs)),
        dict(sorted(stats.items())),
    )


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return job_main(
        "build_training_set",
        "Build point-in-time labelled training rows for a model into gold.training_sets.",
        add_args,
        body,
        argv,
        spark,
    )
