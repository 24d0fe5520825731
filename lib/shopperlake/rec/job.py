"""``train --model recommender`` and ``score --model recommender --as-of D``.

train: fit every source on interactions before a holdout cutoff (EASE λ tuned on a validation
window before that), evaluate every source and the hybrid side by side, write
gold.model_metrics and register a version. score: refit on every interaction up to the end of
the as-of day with the registered settings, write gold.recommendations (every user of the
as-of profile snapshot gets K items) and gold.similar_items.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
from collections.abc import Sequence
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shopperlake.cli import JobContext, job_main
from shopperlake.errors import InputError
from shopperlake.ml.registry import Registry, registry_root
from shopperlake.profile_snapshots import ensure_profiles
from shopperlake.profiles import point_in_time
from shopperlake.ranking_metrics import ranking_metrics
from shopperlake.rec.content import interaction_affinities, profile_affinities
from shopperlake.rec.ease import ease_weights, gram_matrix, score_ease
from shopperlake.rec.evaluate import (
    evaluate_lists,
    metrics_table,
    novelty_counts,
    random_split,
    split_last_order,
)
from shopperlake.rec.hybrid import finalise
from shopperlake.rec.interactions import bought, interactions, truth_window
from shopperlake.rec.params import RecParams
from shopperlake.rec.pipeline import Fitted, Inputs, final_lists, fit_sources, release
from shopperlake.rec.popularity import item_popularity, recommend_popular, segment_popularity
from shopperlake.schemas import MODEL_METRICS

log = logging.getLogger(__name__)
MODEL = "recommender"
TABLE_COLUMNS = ("precision@10", "recall@10", "ndcg@10", "map@10", "hit_rate@10", "coverage@10",
                 "novelty@10")  # fmt: skip


def wants_recommender(argv: Sequence[str]) -> bool:
    """True when the command line asks for ``--model recommender``."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--model" and i + 1 < len(args) and args[i + 1] == MODEL:
            return True
        if arg == f"--model={MODEL}":
            return True
    return False


# -- inputs --------------------------------------------------------------------------------------
def catalog_frame(ctx: JobContext, events: DataFrame) -> DataFrame:
    """(item_id, category, price): bronze.items, or the items seen in events when it is empty."""
    items = ctx.lake.read("bronze.items", required=False)
    if items.limit(1).count():
        return items.select("item_id", "category", "price").dropDuplicates(["item_id"])
    log.info("bronze.items is empty: the catalogue is the items seen in events")
    return (
        events.where(F.col("item_id").isNotNull())
        .groupBy("item_id")
        .agg(F.first("category", ignorenulls=True).alias("category"), F.avg("price").alias("price"))
        .withColumn("category", F.coalesce(F.col("category"), F.lit("unknown")))
    )


def segments_of(ctx: JobContext, profiles: DataFrame, as_of: dt.date) -> DataFrame:
    """(user_id, segment) for the snapshot users: rfm_segment of gold.user_segments of the same
    date when it exists, else null (global popularity)."""
    users = profiles.select("user_id").distinct()
    if ctx.lake.exists("gold.user_segments"):
        seg = ctx.lake.read("gold.user_segments").where(F.col("as_of_date") == F.lit(as_of))
        return users.join(
            seg.select("user_id", F.col("rfm_segment").alias("segment")), "user_id", "left"
        )
    return users.withColumn("segment", F.lit(None).cast("string"))


def time_inputs(
    ctx: JobContext, events: DataFrame, catalog: DataFrame, cutoff: dt.date, params: RecParams
) -> Inputs:
    """Inputs for serving as of ``cutoff``: interactions and bought items up to its end."""
    profiles = ensure_profiles(ctx, cutoff)
    return Inputs(
        interactions=interactions(
            events, cutoff, params.event_weights, params.half_life_days, params.lookback_days
        ),
        users=segments_of(ctx, profiles, cutoff).cache(),
        affinities=profile_affinities(profiles),
        catalog=catalog,
        popularity=item_popularity(events, cutoff, params.popularity_days),
        exclude=bought(events, cutoff) if params.exclude_bought else None,
        repeat_categories=params.repeat_categories,
    )


# -- train ---------------------------------------------------------------------------------------
Tuned = tuple[float | None, dict[str, float]]
Evaluated = tuple[dict[str, dict[str, float]], Fitted, float | None, dict[str, float]]


def tune_ease_time(
    ctx: JobContext, events: DataFrame, catalog: DataFrame, cutoff: dt.date, params: RecParams
) -> Tuned:
    """λ by validation NDCG@10: fit on interactions up to ``cutoff - V``, rank the next V days
    (no holdout data is read)."""
    start = cutoff - dt.timedelta(days=params.validation_days)
    inter = interactions(
        events, start, params.event_weights, params.half_life_days, params.lookback_days
    )
    truth = truth_window(events, start, cutoff, params.truth_event_types)
    excl = bought(events, start) if params.exclude_bought else None
    return tune_ease(ctx.spark, inter, truth, excl, catalog, params)


def tune_ease_split(
    spark: SparkSession, train: DataFrame, catalog: DataFrame, params: RecParams, seen: bool
) -> Tuned:
    """λ by NDCG@10 on an inner per-user random split of the training interactions (for the
    protocols whose holdout is not a time window); ``seen``: exclude inner-train items."""
    inner, valid = random_split(train, params.test_ratio, params.seed + 1)
    excl = inner.select("user_id", "item_id") if seen else None
    return tune_ease(spark, inner, valid, excl, catalog, params)


def tune_ease(
    spark: SparkSession,
    inter: DataFrame,
    truth: DataFrame,
    exclude: DataFrame | None,
    catalog: DataFrame,
    params: RecParams,
) -> Tuned:
    """The λ of ``ease.lambdas`` with the best NDCG@10 of EASE alone (same rules and fill)."""
    lambdas = [float(v) for v in params.ease["lambdas"]]
    if params.weights().get("ease", 0.0) <= 0 or not lambdas:
        return None, {}
    inter = inter.cache()
    gram = gram_matrix(spark, inter, int(params.ease["max_items"]), int(params.ease["min_users"]))
    if gram is None:
        inter.unpersist()
        return None, {}
    users = inter.select("user_id").distinct().withColumn("segment", F.lit(None).cast("string"))
    fallback = recommend_popular(users, segment_popularity(inter, users, params.fallback_n))
    results: dict[str, float] = {}
    for lam in lambdas:
        cands = score_ease(
            spark, inter, gram.item_ids, ease_weights(gram.matrix, lam), params.candidates,
            int(params.ease["block_items"]),
        ).withColumn("source", F.lit("ease"))  # fmt: skip
        recs = finalise(
            cands, users, fallback, catalog, exclude, 10, params.max_per_category,
            params.repeat_categories,
        )  # fmt: skip
        results[f"lambda={lam:g}"] = ranking_metrics(recs, truth, (10,))["ndcg@10"]
        log.info("EASE validation lambda=%s ndcg@10=%.4f", lam, results[f"lambda={lam:g}"])
    best = max(lambdas, key=lambda lam: results[f"lambda={lam:g}"])
    inter.unpersist()
    return best, results


def evaluate_time(
    ctx: JobContext, events: DataFrame, catalog: DataFrame, as_of: dt.date, params: RecParams
) -> Evaluated:
    """Fit on interactions up to ``as_of - H``, evaluate on the purchases of the last H days."""
    cutoff = as_of - dt.timedelta(days=params.holdout_days)
    lam, validation = tune_ease_time(ctx, events, catalog, cutoff, params)
    inp = time_inputs(ctx, events, catalog, cutoff, params)
    truth = truth_window(events, cutoff, as_of, params.truth_event_types).join(
        inp.users.select("user_id"), "user_id"
    )
    return (*_evaluate(ctx.spark, inp, truth, params, lam), lam, validation)


def evaluate_random(
    ctx: JobContext, events: DataFrame, catalog: DataFrame, as_of: dt.date, params: RecParams
) -> Evaluated:
    """Published-figures protocol: per-user random split of interactions, items seen in
    training removed from the ranking, binary relevance."""
    inter = interactions(
        events, as_of, params.event_weights, params.half_life_days, params.lookback_days
    )
    train, test = random_split(inter, params.test_ratio, params.seed)
    train = train.cache()
    users = train.select("user_id").distinct().withColumn("segment", F.lit(None).cast("string"))
    inp = Inputs(
        interactions=train,
        users=users.cache(),
        affinities=interaction_affinities(train, catalog),
        catalog=catalog,
        popularity=train.groupBy("item_id").agg(F.count(F.lit(1)).alias("count")),
        exclude=train.select("user_id", "item_id"),
        repeat_categories=(),
    )
    lam, validation = tune_ease_split(ctx.spark, train, catalog, params, seen=True)
    return (*_evaluate(ctx.spark, inp, test, params, lam), lam, validation)


def evaluate_last_order(
    ctx: JobContext, events: DataFrame, catalog: DataFrame, as_of: dt.date, params: RecParams
) -> Evaluated:
    """Next-basket protocol (Instacart): predict each user's last order from the earlier ones.

    Already-bought items are excluded only when ``exclude_bought`` (set it false for
    next-basket data, where most of a basket is re-orders)."""
    train_events, truth = split_last_order(point_in_time(events, as_of))
    train = interactions(
        train_events, as_of, params.event_weights, params.half_life_days, params.lookback_days
    ).cache()
    users = train.select("user_id").distinct().withColumn("segment", F.lit(None).cast("string"))
    inp = Inputs(
        interactions=train,
        users=users.cache(),
        affinities=interaction_affinities(train, catalog),
        catalog=catalog,
        popularity=train.groupBy("item_id").agg(F.count(F.lit(1)).alias("count")),
        exclude=train.select("user_id", "item_id") if params.exclude_bought else None,
        repeat_categories=params.repeat_categories,
    )
    lam, validation = tune_ease_split(ctx.spark, train, catalog, params, params.exclude_bought)
    truth = truth.join(users.select("user_id"), "user_id")  # users with an earlier order
    return (*_evaluate(ctx.spark, inp, truth, params, lam), lam, validation)


def _evaluate(
    spark: SparkSession, inp: Inputs, truth: DataFrame, params: RecParams,
    ease_lambda: float | None,
) -> tuple[dict[str, dict[str, float]], Fitted]:  # fmt: skip
    truth = truth.cache()
    if truth.limit(1).count() == 0:
        raise InputError(
            "the evaluation holdout has no relevant interactions: use a later --as-of or a "
            "longer recommender.holdout_days"
        )
    fitted = fit_sources(spark, inp, params, ease_lambda)
    lists = final_lists(inp, fitted, params, max(params.k, *params.eval_ks))
    lists = {name: df.cache() for name, df in lists.items()}
    catalog_size = inp.catalog.select("item_id").distinct().count()
    metrics = evaluate_lists(
        lists, truth, params.eval_ks, catalog_size, novelty_counts(inp.interactions, inp.catalog)
    )
    for df in lists.values():
        df.unpersist()
    truth.unpersist()
    return metrics, fitted


def train_body(ctx: JobContext) -> None:
    params = RecParams.from_config(ctx.cfg.section("recommender"))
    events = ctx.lake.read("bronze.events")
    as_of = ctx.as_of or _latest_day(events)
    catalog = catalog_frame(ctx, events).cache()
    cutoff = as_of - dt.timedelta(days=params.holdout_days)
    evaluate = {
        "time": evaluate_time, "random": evaluate_random, "last_order": evaluate_last_order
    }[params.protocol]  # fmt: skip
    metrics, fitted, ease_lambda, validation = evaluate(ctx, events, catalog, as_of, params)
    release(fitted)
    split = {"time": "holdout", "random": "random_split", "last_order": "last_order"}[
        params.protocol
    ]
    registry = Registry(registry_root(ctx.lake.root))
    mv = registry.new_version(MODEL)
    try:
        info: dict[str, Any] = {
            "model": MODEL,
            "as_of": as_of.isoformat(),
            "cutoff": cutoff.isoformat(),
            "protocol": params.protocol,
            "ease_lambda": ease_lambda,
            "ease_used": fitted.gram is not None,
            "ease_validation_ndcg@10": validation,
            "recommender": ctx.cfg.section("recommender"),
            "trained_at": dt.datetime.now(dt.UTC).isoformat(),
            "events_version": ctx.lake.version("bronze.events"),
        }
        (mv.path / "params.json").write_text(json.dumps(info, indent=2, default=str))
        (mv.path / "metrics.json").write_text(json.dumps({split: metrics}, indent=2))
        now = dt.datetime.now(dt.UTC)
        rows = [
            (MODEL, mv.version, algo, split, metric, float(value), now, ctx.run.run_id)
            for algo, values in metrics.items()
            for metric, value in values.items()
        ]
        rows += [
            (MODEL, mv.version, "ease", "validation", f"ndcg@10:{key}", v, now, ctx.run.run_id)
            for key, v in validation.items()
        ]
        ctx.lake.merge(
            "gold.model_metrics",
            ctx.spark.createDataFrame(rows, MODEL_METRICS),
            ["model", "version", "algorithm", "split", "metric"],
        )
    except BaseException:
        registry.discard(mv)
        raise
    registry.set_current(MODEL, mv.version)
    catalog.unpersist()
    print(f"\nmodel {MODEL} {mv.version} ({split}, as of {as_of}, EASE lambda {ease_lambda})")
    print(metrics_table(metrics, TABLE_COLUMNS))
    ctx.run.rows_written = len(rows)
    for algo, values in metrics.items():
        ctx.run.metrics[f"{split}.{algo}.ndcg@10"] = values["ndcg@10"]
        ctx.run.metrics[f"{split}.{algo}.recall@10"] = values["recall@10"]


def _latest_day(events: DataFrame) -> dt.date:
    row = events.agg(F.max("event_date").alias("d")).first()
    if row is None or row["d"] is None:
        raise InputError("bronze.events is empty: run ingest first")
    return dt.date.fromisoformat(str(row["d"]))


# -- score ---------------------------------------------------------------------------------------
def score_body(ctx: JobContext) -> None:
    if ctx.as_of is None:
        raise InputError("score --model recommender needs --as-of YYYY-MM-DD")
    as_of = ctx.as_of
    params = RecParams.from_config(ctx.cfg.section("recommender"))
    registry = Registry(registry_root(ctx.lake.root))
    mv = registry.get(MODEL, ctx.args.version)
    ease_lambda = mv.read_json("params.json").get("ease_lambda")
    events = ctx.lake.read("bronze.events")
    catalog = catalog_frame(ctx, events).cache()
    inp = time_inputs(ctx, events, catalog, as_of, params)
    fitted = fit_sources(ctx.spark, inp, params, ease_lambda)
    recs = final_lists(inp, fitted, params, params.k, sources=False)["hybrid"]
    out = recs.select(
        "user_id",
        F.lit(as_of).alias("as_of_date"),
        "rank",
        "item_id",
        "score",
        "source",
        F.lit(mv.version).alias("model_version"),
    )
    ctx.lake.overwrite_where("gold.recommendations", out, {"as_of_date": as_of})
    assert fitted.similar is not None
    similar = fitted.similar.where(F.col("rank") <= params.similar_items_n).select(
        "item_id",
        F.col("rank").cast("int"),
        "similar_item_id",
        "score",
        F.lit(mv.version).alias("model_version"),
        F.lit(as_of).alias("as_of_date"),
    )
    ctx.lake.overwrite_where("gold.similar_items", similar, {"as_of_date": as_of})
    written = ctx.lake.read("gold.recommendations").where(F.col("as_of_date") == F.lit(as_of))
    n_rows = written.count()
    n_users = inp.users.count()
    release(fitted)
    catalog.unpersist()
    ctx.run.rows_read = n_users
    ctx.run.rows_written = n_rows
    ctx.run.metrics["users"] = float(n_users)
    log.info(
        "recommendations as of %s: %d rows for %d users (%s)", as_of, n_rows, n_users, mv.version
    )


# -- entry points --------------------------------------------------------------------------------
def add_train_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, choices=[MODEL])


def add_score_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, choices=[MODEL])
    parser.add_argument("--version", default=None, help="model version (default: current)")


def train_main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return job_main(
        "train",
        "Fit and evaluate the recommender sources and the hybrid; register a version.",
        add_train_args,
        train_body,
        argv,
        spark,
    )


def score_main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return job_main(
        "score",
        "Top-K recommendations for every user of the as-of profile snapshot; similar items.",
        add_score_args,
        score_body,
        argv,
        spark,
    )
