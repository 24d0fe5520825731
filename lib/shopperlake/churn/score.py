"""``score --model churn|propensity --as-of D``: every user of the profile snapshot of D gets a
row in ``gold.<kind>_scores`` (replaceWhere on the as-of date). Users in the model's population
at D (the training population rule of labels.py: churn, a purchase in ``[D-L+1, D]``) get the
current registered model's calibrated probability and a risk band; the others get no score and
a ``population`` value saying why (``no_purchase_in_lookback`` / ``inactive_in_lookback``). For
churn also ``gold.retention_targets``: users in the configured risk bands with their expected
value at stake, mapped to an action tier by the rules in config; users outside the population
are left out or given the tier ``retention.outside_population``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from shopperlake.churn.dnn import TrainedDnn, predict_column
from shopperlake.churn.features import FeatureTransform, profile_features
from shopperlake.churn.labels import population_members
from shopperlake.churn.spec import ModelSpec, model_spec
from shopperlake.core.cli import Job, JobContext
from shopperlake.core.errors import ConfigError, InputError
from shopperlake.core.exclusion import without_flagged
from shopperlake.profiles.snapshots import ensure_profiles
from shopperlake.training.calibration import Calibrator
from shopperlake.training.registry import ModelVersion, Registry

log = logging.getLogger(__name__)
IN_POPULATION = "in_population"
EXCLUDE = "exclude"


def load_dnn(mv: ModelVersion) -> TrainedDnn:
    import tensorflow as tf

    model = tf.keras.models.load_model(mv.path / "model.keras", compile=False)
    return TrainedDnn(model.get_config(), model.get_weights(), {}, 0.0, 0, 0)


def load_calibrator(mv: ModelVersion, file: str = "calibration.json") -> Calibrator:
    """The calibrator stored with the model version (``calibration.json``: the DNN's)."""
    path = mv.path / file
    if not path.is_file():
        raise InputError(
            f"model '{mv.name}' version {mv.version} has no {file} (trained before "
            "scores were calibrated): run train again"
        )
    try:
        return Calibrator.from_json(path.read_text())
    except ValueError as exc:
        raise InputError(f"model '{mv.name}' version {mv.version}: {exc}") from exc


def calibrated(raw: Column, calibrator: Calibrator) -> Column:
    """``calibrator.apply`` (the function train evaluated) on a column of raw scores."""

    @F.pandas_udf("double")  # type: ignore[call-overload]
    def apply(p: pd.Series) -> pd.Series:
        return pd.Series(calibrator.apply(p.to_numpy(dtype=np.float64)), index=p.index)

    return apply(raw)


def risk_band(score: Column, bands: dict[str, float]) -> Column:
    """Highest band whose lower bound the score reaches; ``low`` below all of them."""
    expr: Column = F.lit("low")
    for name, bound in sorted(bands.items(), key=lambda kv: kv[1]):
        expr = F.when(score >= F.lit(bound), F.lit(name)).otherwise(expr)
    return expr


def population_status(profiles: DataFrame, members: DataFrame, spec: ModelSpec) -> DataFrame:
    """``(user_id, population)`` for every snapshot user: ``in_population`` for ``members``,
    else the model's outside value."""
    flagged = members.select("user_id", F.lit(True).alias("_member"))
    return (
        profiles.select("user_id")
        .join(flagged, "user_id", "left")
        .select(
            "user_id",
            F.when(F.col("_member"), F.lit(IN_POPULATION))
            .otherwise(F.lit(spec.outside_population))
            .alias("population"),
        )
    )


def assemble_scores(
    status: DataFrame, scored: DataFrame, bands: dict[str, float], version: str
) -> DataFrame:
    """One row per ``status`` user: calibrated ``score``, ``risk_band`` and ``top_reasons`` of
    ``scored`` for users in the population, nulls for the others."""
    inside = F.col("population") == F.lit(IN_POPULATION)
    return status.join(scored.select("user_id", "score", "top_reasons"), "user_id", "left").select(
        "user_id",
        F.when(inside, F.col("score")).alias("score"),
        F.when(inside, risk_band(F.col("score"), bands)).alias("risk_band"),
        F.when(inside, F.col("top_reasons")).alias("top_reasons"),
        F.lit(version).alias("model_version"),
        "population",
    )


def score_users(
    spark: SparkSession,
    profiles: DataFrame,
    members: DataFrame,
    spec: ModelSpec,
    mv: ModelVersion,
    top_k: int = 3,
) -> DataFrame:
    """Every snapshot user; the DNN runs on the population ``members`` only."""
    transform = FeatureTransform.from_json((mv.path / "transform.json").read_text())
    calibrator = load_calibrator(mv)
    status = population_status(profiles, members, spec)
    inside = profiles.join(
        status.where(F.col("population") == F.lit(IN_POPULATION)), "user_id", "left_semi"
    )
    feats = transform.apply(profile_features(inside, spec)).select("user_id", "features")
    scored = predict_column(spark, feats, load_dnn(mv), reasons=transform.output_names, top_k=top_k)
    scored = scored.withColumn("score", calibrated(F.col("score"), calibrator))
    return assemble_scores(status, scored, spec.risk_bands, mv.version)


def retention_targets(
    scores: DataFrame, profiles: DataFrame, segments: DataFrame | None, cfg: dict[str, Any]
) -> DataFrame:
    """Users in ``retention.bands`` → action tier (first matching rule) and expected value at
    stake (calibrated churn probability x customer value). Rules see ``score``, ``risk_band``,
    ``customer_value``, ``rfm_segment`` and ``return_rate`` (the profile's
    ``retention.return_rate_column``: serial returners can be kept off coupons). Users outside
    the model's population: left out (``outside_population: exclude``) or given that tier,
    without score."""
    value_col = str(cfg.get("value_column", "monetary_total"))
    return_col = str(cfg.get("return_rate_column", "line_return_rate"))
    for key, col in (("value_column", value_col), ("return_rate_column", return_col)):
        if col not in profiles.columns:
            raise ConfigError(f"retention.{key} '{col}' is not a profile column")
    bands = list(cfg.get("bands") or ["high"])
    rules = list(cfg.get("rules") or [])
    if not rules:
        raise ConfigError("retention.rules is empty: configure at least one tier")
    outside = cfg.get("outside_population", EXCLUDE)
    if not isinstance(outside, str) or not outside.strip():
        raise ConfigError(
            f"retention.outside_population must be '{EXCLUDE}' or a tier name, got {outside!r}"
        )
    inside = F.col("population") == F.lit(IN_POPULATION)
    chosen = inside & F.col("risk_band").isin(*bands)
    if outside != EXCLUDE:
        chosen = chosen | ~inside
    base = scores.where(chosen).join(
        profiles.select(
            "user_id",
            F.col(value_col).cast("double").alias("customer_value"),
            F.col(return_col).cast("double").alias("return_rate"),
        ),
        "user_id",
        "left",
    )
    if segments is not None:
        base = base.join(segments.select("user_id", "rfm_segment"), "user_id", "left")
    else:
        base = base.withColumn("rfm_segment", F.lit(None).cast("string"))
    tier: Column = F.lit(None).cast("string")
    for rule in reversed(rules):
        if not isinstance(rule, dict) or {"tier", "when"} - set(rule):
            raise ConfigError(f"retention.rules entries need tier and when: {rule!r}")
        tier = F.when(F.expr(str(rule["when"])), F.lit(str(rule["tier"]))).otherwise(tier)
    tier = F.when(inside, tier).otherwise(F.lit(None if outside == EXCLUDE else outside))
    value = F.coalesce(F.col("customer_value"), F.lit(0.0))
    return base.select(
        "user_id",
        "score",
        "risk_band",
        "rfm_segment",
        value.alias("customer_value"),
        (F.col("score") * value).alias("value_at_stake"),
        tier.alias("action"),
        "top_reasons",
        "model_version",
        "population",
    ).where(F.col("action").isNotNull())


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model name in config")
    parser.add_argument("--version", default=None, help="model version (default: current)")


def body(ctx: JobContext) -> None:
    if ctx.as_of is None:
        raise InputError("score needs --as-of YYYY-MM-DD (the profile snapshot to score)")
    spec = model_spec(ctx.cfg, ctx.args.model)
    registry = Registry.from_config(ctx.cfg, ctx.lake.root)
    mv = registry.get(spec.name, ctx.args.version)
    profiles = ensure_profiles(ctx, ctx.as_of)  # score declares no on-demand build: fails
    events = ctx.lake.read("bronze.events").where(F.col("event_date") <= F.lit(ctx.as_of))
    events = without_flagged(events, ctx.lake, ctx.cfg, ctx.as_of, ctx.run.metrics)
    members = population_members(events, ctx.as_of, spec)
    scores = (
        score_users(ctx.spark, profiles, members, spec, mv)
        .withColumn("as_of_date", F.lit(ctx.as_of))
        .cache()
    )
    n = scores.count()
    ctx.lake.overwrite_where(spec.score_table, scores, {"as_of_date": ctx.as_of})
    ctx.run.rows_read = n
    ctx.run.rows_written = n
    groups = scores.groupBy("population", "risk_band").count().collect()
    bands = {r["risk_band"]: r["count"] for r in groups if r["risk_band"] is not None}
    for band, count in bands.items():
        ctx.run.metrics[f"band.{band}"] = float(count)
    populations: dict[str, int] = {}
    for r in groups:
        populations[r["population"]] = populations.get(r["population"], 0) + r["count"]
    for value, count in populations.items():
        ctx.run.metrics[f"population.{value}"] = float(count)
    if spec.kind == "churn":
        segments = None
        if ctx.lake.exists("gold.user_segments"):
            segments = ctx.lake.read("gold.user_segments").where(
                F.col("as_of_date") == F.lit(ctx.as_of)
            )
        targets = retention_targets(scores, profiles, segments, ctx.cfg.section("retention"))
        targets = targets.withColumn("as_of_date", F.lit(ctx.as_of))
        ctx.lake.overwrite_where("gold.retention_targets", targets, {"as_of_date": ctx.as_of})
        ctx.run.metrics["retention_targets"] = float(
            ctx.lake.read("gold.retention_targets")
            .where(F.col("as_of_date") == F.lit(ctx.as_of))
            .count()
        )
    scores.unpersist()
    log.info(
        "scored %d users with %s %s: bands %s, population %s",
        n,
        spec.name,
        mv.version,
        bands,
        populations,
    )


SCORE = Job(
    name="score",
    description="Score the users of a profile snapshot with the current model; retention "
    "targets.",
    add_args=add_args,
    body=body,
    reads=(
        "gold.user_profiles",
        "bronze.events",
        "gold.user_segments",
        "registry/*",
        "gold.user_anomalies",
    ),  # fmt: skip
    writes=("gold.*_scores", "gold.retention_targets"),
)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return SCORE.main(argv, spark)
