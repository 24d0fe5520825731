"""``score --model churn|propensity --as-of D``: score every user of the profile snapshot of D
with the current registered model and write ``gold.<kind>_scores`` (replaceWhere on the as-of
date); for churn also ``gold.retention_targets``: high-risk users with their value at stake,
mapped to an action tier by the rules in config.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from shopperlake.cli import JobContext, job_main
from shopperlake.errors import ConfigError, InputError
from shopperlake.ml.dnn import TrainedDnn, predict_column
from shopperlake.ml.features import FeatureTransform, profile_features
from shopperlake.ml.registry import ModelVersion, Registry, registry_root
from shopperlake.ml.spec import ModelSpec, model_spec
from shopperlake.profile_snapshots import read_snapshot

log = logging.getLogger(__name__)


def load_dnn(mv: ModelVersion) -> TrainedDnn:
    import tensorflow as tf

    model = tf.keras.models.load_model(mv.path / "model.keras", compile=False)
    return TrainedDnn(model.get_config(), model.get_weights(), {}, 0.0, 0, 0)


def risk_band(score: Column, bands: dict[str, float]) -> Column:
    """Highest band whose lower bound the score reaches; ``low`` below all of them."""
    expr: Column = F.lit("low")
    for name, bound in sorted(bands.items(), key=lambda kv: kv[1]):
        expr = F.when(score >= F.lit(bound), F.lit(name)).otherwise(expr)
    return expr


def score_users(
    spark: SparkSession, profiles: DataFrame, spec: ModelSpec, mv: ModelVersion, top_k: int = 3
) -> DataFrame:
    transform = FeatureTransform.from_json((mv.path / "transform.json").read_text())
    feats = transform.apply(profile_features(profiles, spec)).select("user_id", "features")
    scored = predict_column(spark, feats, load_dnn(mv), reasons=transform.output_names, top_k=top_k)
    return scored.select(
        "user_id",
        F.col("score"),
        risk_band(F.col("score"), spec.risk_bands).alias("risk_band"),
        "top_reasons",
        F.lit(mv.version).alias("model_version"),
    )


def retention_targets(
    scores: DataFrame, profiles: DataFrame, segments: DataFrame | None, cfg: dict[str, Any]
) -> DataFrame:
    """High-risk users → action tier (first matching rule) and expected value at stake."""
    value_col = str(cfg.get("value_column", "monetary_total"))
    if value_col not in profiles.columns:
        raise ConfigError(f"retention.value_column '{value_col}' is not a profile column")
    bands = list(cfg.get("bands") or ["high"])
    rules = list(cfg.get("rules") or [])
    if not rules:
        raise ConfigError("retention.rules is empty: configure at least one tier")
    base = scores.where(F.col("risk_band").isin(*bands)).join(
        profiles.select("user_id", F.col(value_col).cast("double").alias("customer_value")),
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
    ).where(F.col("action").isNotNull())


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model name in config")
    parser.add_argument("--version", default=None, help="model version (default: current)")


def body(ctx: JobContext) -> None:
    if ctx.as_of is None:
        raise InputError("score needs --as-of YYYY-MM-DD (the profile snapshot to score)")
    spec = model_spec(ctx.cfg, ctx.args.model)
    registry = Registry(registry_root(ctx.lake.root))
    mv = registry.get(spec.name, ctx.args.version)
    profiles = read_snapshot(ctx, ctx.as_of)
    if profiles is None:
        raise InputError(
            f"no gold.user_profiles snapshot for {ctx.as_of}: run build_profiles --as-of "
            f"{ctx.as_of} first"
        )
    scores = (
        score_users(ctx.spark, profiles, spec, mv)
        .withColumn("as_of_date", F.lit(ctx.as_of))
        .cache()
    )
    n = scores.count()
    ctx.lake.overwrite_where(spec.score_table, scores, {"as_of_date": ctx.as_of})
    ctx.run.rows_read = n
    ctx.run.rows_written = n
    bands = {r["risk_band"]: r["count"] for r in scores.groupBy("risk_band").count().collect()}
    for band, count in bands.items():
        ctx.run.metrics[f"band.{band}"] = float(count)
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
    log.info("scored %d users with %s %s: %s", n, spec.name, mv.version, bands)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    import sys

    from shopperlake.rec.job import score_main, wants_recommender

    if wants_recommender(sys.argv[1:] if argv is None else argv):
        return score_main(argv, spark)
    return job_main(
        "score",
        "Score the users of a profile snapshot with the current model; retention targets.",
        add_args,
        body,
        argv,
        spark,
    )
