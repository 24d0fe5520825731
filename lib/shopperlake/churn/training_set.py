"""``build_training_set``: point-in-time labelled rows for one model → ``gold.training_sets``.

For each cutoff: the model's population and labels from ``bronze.events`` (labels.py) joined to
the ``gold.user_profiles`` snapshot as of that cutoff (built on demand when missing). Two
designs (``models.<name>.design``):

- ``rolling``: the latest cutoff T is the out-of-time test set; earlier cutoffs are split into
  train and validation by a hash of the user id. Purged: every earlier cutoff's label window
  ends on or before T (``c + H <= T``), so no training or validation label sees the test
  period.
- ``holdout``: the calibration/holdout design of the customer-base (BTYD) literature: one
  cutoff c, labels over the holdout period ``[c+1, c+H]``, users split into train, validation
  and test by a seeded hash of the user id.

Every cutoff's horizon must end on or before ``--as-of``, and no event after ``--as-of`` is
read. The model's rows are replaced as a whole (idempotent).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from shopperlake.churn.features import profile_features
from shopperlake.churn.labels import label_users
from shopperlake.churn.spec import DESIGNS, ModelSpec, model_spec
from shopperlake.core.cli import Job, JobContext, parse_date
from shopperlake.core.errors import InputError
from shopperlake.core.exclusion import without_flagged
from shopperlake.profiles.job import BUILD_PROFILES
from shopperlake.profiles.snapshots import ensure_profiles

log = logging.getLogger(__name__)


def resolve_cutoffs(raw: str | None, as_of: dt.date, spec: ModelSpec) -> list[dt.date]:
    """The cutoffs of the model's design, latest last.

    ``rolling``: explicit ``--cutoffs a,b,c`` or, by default, the test cutoff
    ``T = as_of - H`` and ``auto_cutoffs - 1`` training cutoffs ``T - H``, ``T - H - step``, ...
    whose label windows end on or before T. ``holdout``: the single ``--cutoffs`` value or
    ``as_of - H``. A cutoff whose horizon ends after ``as_of``, or (rolling) an earlier cutoff
    whose horizon ends after T, is refused with an InputError naming it.
    """
    horizon = dt.timedelta(days=spec.horizon_days)
    if raw:
        cutoffs = sorted({parse_date(c.strip(), "--cutoffs date") for c in raw.split(",") if c})
    elif spec.design == "holdout":
        cutoffs = [as_of - horizon]
    else:
        test = as_of - horizon
        step = dt.timedelta(days=spec.cutoff_step_days)
        cutoffs = sorted([test - horizon - i * step for i in range(spec.auto_cutoffs - 1)] + [test])
    if spec.design == "holdout" and len(cutoffs) != 1:
        raise InputError(
            f"models.{spec.name}.design is holdout: give one cutoff (the end of the calibration "
            f"period), got {', '.join(map(str, cutoffs))}"
        )
    if spec.design == "rolling" and len(cutoffs) < 2:
        raise InputError("need at least two cutoffs: earlier ones to train, the latest to test")
    late = [c for c in cutoffs if c + horizon > as_of]
    if late:
        raise InputError(
            f"cutoff {late[0]} + horizon {spec.horizon_days} days ends after --as-of {as_of}: "
            "its labels are not complete yet"
        )
    test = cutoffs[-1]
    overlap = [c for c in cutoffs[:-1] if c + horizon > test]
    if overlap:
        raise InputError(
            f"cutoff {overlap[-1]} + horizon {spec.horizon_days} days ends after the test cutoff "
            f"{test}: its training labels would see the test period (every earlier cutoff must "
            f"be on or before {test - horizon})"
        )
    return cutoffs


def _bucket(salt: str) -> Column:
    """Stable bucket 0..999 of the user id."""
    return F.pmod(F.xxhash64(F.col("user_id"), F.lit(salt)), F.lit(1000))


def assign_split(rows: DataFrame, test_cutoff: dt.date, validation_share: float) -> DataFrame:
    """Rolling design: out-of-time test at the latest cutoff; train/validation by a stable hash
    of the user."""
    bucket = _bucket("split")
    split = (
        F.when(F.col("cutoff") == F.lit(test_cutoff), "test")
        .when(bucket < F.lit(int(round(validation_share * 1000))), "validation")
        .otherwise("train")
    )
    return rows.withColumn("split", split)


def assign_holdout_split(
    rows: DataFrame, validation_share: float, test_share: float, seed: int
) -> DataFrame:
    """Holdout design: test, validation and train users by a hash of the user id salted with
    ``seed`` (bucket 0..999: the first ``test_share`` thousandths are test, the next
    ``validation_share`` validation)."""
    bucket = _bucket(f"holdout:{seed}")
    test_end = int(round(test_share * 1000))
    validation_end = test_end + int(round(validation_share * 1000))
    split = (
        F.when(bucket < F.lit(test_end), "test")
        .when(bucket < F.lit(validation_end), "validation")
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
    parser.add_argument(
        "--cutoffs",
        default=None,
        help="comma-separated YYYY-MM-DD dates (rolling design; the latest is the test cutoff) "
        "or the one cutoff of the holdout design",
    )
    parser.add_argument(
        "--design",
        choices=DESIGNS,
        default=None,
        help="rolling (out-of-time test at the latest cutoff) or holdout (one cutoff, users "
        "split by hash); default models.<name>.design",
    )


def body(ctx: JobContext) -> None:
    if ctx.as_of is None:
        raise InputError("build_training_set needs --as-of (the day whose data is complete)")
    spec = model_spec(ctx.cfg, ctx.args.model)
    if ctx.args.design:
        spec = dataclasses.replace(spec, design=ctx.args.design)
    cutoffs = resolve_cutoffs(ctx.args.cutoffs, ctx.as_of, spec)
    events = ctx.lake.read("bronze.events").where(F.col("event_date") <= F.lit(ctx.as_of))
    events = without_flagged(events, ctx.lake, ctx.cfg, ctx.as_of, ctx.run.metrics)
    parts = []
    for cutoff in cutoffs:
        profiles = ensure_profiles(ctx, cutoff)
        parts.append(training_rows(events, profiles, cutoff, spec))
    rows = reduce(DataFrame.unionByName, parts)
    if spec.design == "holdout":
        rows = assign_holdout_split(rows, spec.validation_share, spec.test_share, spec.split_seed)
    else:
        rows = assign_split(rows, cutoffs[-1], spec.validation_share)
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
        "training set %s (%s design): %d rows over cutoffs %s; %s",
        spec.name,
        spec.design,
        total,
        ", ".join(map(str, cutoffs)),
        dict(sorted(stats.items())),
    )


BUILD_TRAINING_SET = Job(
    name="build_training_set",
    description="Build point-in-time labelled training rows for a model into gold.training_sets.",
    add_args=add_args,
    body=body,
    reads=(*BUILD_PROFILES.reads, "gold.user_profiles"),
    writes=("gold.training_sets", "gold.user_profiles"),
    builds=("gold.user_profiles",),
)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return BUILD_TRAINING_SET.main(argv, spark)
