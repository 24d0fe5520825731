"""The ``train_recommender`` and ``score_recommender --as-of D`` jobs.

train: fit every source on the protocol's training data (EASE λ and the blend weights tuned on
a validation split of that data only), evaluate every source and the hybrid side by side on
the holdout, write gold.model_metrics, register a version and make it current unless its
hybrid metric is worse than the current version's. score: refit on every interaction up to
the end of the as-of day with the registered λ and blend, write gold.recommendations (every
user of the as-of profile snapshot gets K distinct items, checked: the job fails otherwise)
and gold.similar_items.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shopperlake.core.cli import Job, JobContext
from shopperlake.core.errors import ConfigError, InputError, ShopperLakeError
from shopperlake.core.exclusion import without_flagged
from shopperlake.profiles.features import attributes_as_of, point_in_time
from shopperlake.profiles.job import BUILD_PROFILES
from shopperlake.profiles.snapshots import ensure_profiles
from shopperlake.rec.content import interaction_affinities, profile_affinities
from shopperlake.rec.ease import Gram, ease_weights, gram_matrix, score_ease
from shopperlake.rec.evaluate import (
    evaluate_lists,
    list_comparison,
    metrics_table,
    novelty_counts,
    random_split,
    split_last_order,
    stratified_split,
)
from shopperlake.rec.hybrid import finalise, short_lists
from shopperlake.rec.interactions import bought, interactions, truth_window
from shopperlake.rec.params import RecParams
from shopperlake.rec.pipeline import Fitted, Inputs, final_lists, fit_sources, release
from shopperlake.rec.popularity import item_popularity, recommend_popular, segment_popularity
from shopperlake.rec.ranker import tune_weights, validation_frame
from shopperlake.seqmodel.build import user_sequences
from shopperlake.training.model_metrics import (
    BootstrapSettings,
    Comparison,
    comparison_rows,
    comparison_table,
    metric_row,
    write_metrics,
)
from shopperlake.training.petastorm_io import use_cache_dir
from shopperlake.training.ranking import ranking_metrics
from shopperlake.training.registry import ModelVersion, Registry

log = logging.getLogger(__name__)
MODEL = "recommender"
# gold.model_metrics.split of each protocol's figures
SPLIT_NAMES = {"time": "holdout", "random": "random_split", "stratified": "stratified_split",
               "last_order": "last_order"}  # fmt: skip
# (train, test) splitters of the split protocols
SPLITTERS = {"random": random_split, "stratified": stratified_split}
TABLE_COLUMNS = ("precision@10", "recall@10", "ndcg@10", "map@10", "hit_rate@10", "coverage@10",
                 "novelty@10")  # fmt: skip


class ShortListsError(ShopperLakeError):
    """``score --model recommender`` could not give every snapshot user K distinct items."""


# -- inputs --------------------------------------------------------------------------------------
def catalog_frame(ctx: JobContext, events: DataFrame, as_of: dt.date) -> DataFrame:
    """(item_id, category, price) as of ``as_of``: :func:`catalog_as_of` of bronze.items."""
    ctx.lake.require_schema("bronze.items")
    return catalog_as_of(ctx.lake.read("bronze.items", required=False), events, as_of)


def catalog_as_of(items: DataFrame, events: DataFrame, as_of: dt.date) -> DataFrame:
    """(item_id, category, price): the item versions valid at the end of ``as_of``, or, when
    none is, the items seen in events before the end of that day (category: the first
    non-null one, else null, which the per-category cap never groups; price: the mean)."""
    valid = attributes_as_of(items, as_of, "item_id")
    if valid.limit(1).count():
        return valid.select("item_id", "category", "price")
    log.info("no bronze.items row valid as of %s: the catalogue is the items seen in events", as_of)
    return (
        point_in_time(events, as_of)
        .where(F.col("item_id").isNotNull())
        .groupBy("item_id")
        .agg(F.first("category", ignorenulls=True).alias("category"), F.avg("price").alias("price"))
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


def ordered_events(ctx: JobContext, events: DataFrame, cutoff: dt.date) -> DataFrame:
    """The users' point-in-time event sequences up to the end of ``cutoff`` (the builder and
    settings of ``gold.user_sequences``), for the order-aware ``sasrec`` source (lazy: read
    only when that source is fitted)."""
    return user_sequences(
        events,
        cutoff,
        int(ctx.cfg.get("sequences.max_len")),
        [str(t) for t in ctx.cfg.get("sequences.event_types")],
        int(ctx.cfg.get("sequences.min_events")),
    )


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
        sequences=ordered_events(ctx, events, cutoff),
    )


# -- train ---------------------------------------------------------------------------------------
@dataclass
class Validation:
    """A protocol's inner split, built from training data only: the inputs to fit on and the
    relevant items to rank (the holdout is never read)."""

    inputs: Inputs
    truth: DataFrame


@dataclass
class Tuning:
    """What train chose on validation data and ``score`` reuses."""

    ease_lambda: float | None = None
    ease_validation: dict[str, float] = field(default_factory=dict)  # ndcg@10 per λ
    weights: dict[str, float] = field(default_factory=dict)  # blend weight per source
    normalise: str = "rrf"
    rrf_k: float = 10.0
    blend_validation: dict[str, float] = field(default_factory=dict)  # objective per start, tuned

    def blend_params(self, params: RecParams) -> RecParams:
        """``params`` with the chosen blend (weights and normalisation)."""
        return params.with_blend(self.weights, self.normalise, self.rrf_k)


Evaluated = tuple[dict[str, dict[str, float]], Comparison, Fitted, Tuning]


def split_inputs(
    train: DataFrame,
    catalog: DataFrame,
    exclude_seen: bool,
    repeat_categories: tuple[str, ...],
    sequences: DataFrame | None = None,
) -> Inputs:
    """Inputs for protocols whose training data is a set of interactions (no profile snapshot):
    users without segment, content affinities and popularity from those interactions."""
    users = train.select("user_id").distinct().withColumn("segment", F.lit(None).cast("string"))
    return Inputs(
        interactions=train,
        users=users.cache(),
        affinities=interaction_affinities(train, catalog),
        catalog=catalog,
        popularity=train.groupBy("item_id").agg(F.count(F.lit(1)).alias("count")),
        exclude=train.select("user_id", "item_id") if exclude_seen else None,
        repeat_categories=repeat_categories,
        sequences=sequences,
    )


@dataclass(frozen=True)
class TimeWindows:
    """Days of the time protocol. Validation: serve as of ``validation_start``, relevant items
    from ``(validation_start, holdout_start]``. Holdout: serve as of ``holdout_start``, relevant
    items from ``(holdout_start, as_of]``."""

    validation_start: dt.date
    holdout_start: dt.date
    as_of: dt.date

    def __post_init__(self) -> None:
        # Every tuned choice (EASE λ, blend) sees events up to the end of holdout_start at
        # most: the validation window must be non-empty and end before the holdout starts.
        if not self.validation_start < self.holdout_start < self.as_of:
            raise ConfigError(
                f"time protocol: the validation window ({self.validation_start}, "
                f"{self.holdout_start}] must be non-empty and end on or before the holdout "
                f"({self.holdout_start}, {self.as_of}] starts (check recommender.holdout_days "
                "and recommender.validation_days, both >= 1)"
            )


def time_windows(as_of: dt.date, params: RecParams) -> TimeWindows:
    """The time protocol's windows: holdout the last ``holdout_days`` up to ``as_of``,
    validation the ``validation_days`` before it (checked by :class:`TimeWindows`)."""
    holdout_start = as_of - dt.timedelta(days=params.holdout_days)
    validation_start = holdout_start - dt.timedelta(days=params.validation_days)
    return TimeWindows(validation_start, holdout_start, as_of)


def validation_time(
    ctx: JobContext, events: DataFrame, catalog: DataFrame, windows: TimeWindows, params: RecParams
) -> Validation:
    """Serve as of ``validation_start`` (its profile snapshot), rank the purchases up to the
    holdout start: no event of the holdout reaches inputs or truth."""
    start, end = windows.validation_start, windows.holdout_start
    inp = time_inputs(ctx, events, catalog, start, params)
    truth = truth_window(events, start, end, params.truth_event_types).join(
        inp.users.select("user_id"), "user_id"
    )
    return Validation(inp, truth)


def validation_split(
    train: DataFrame, catalog: DataFrame, params: RecParams, seen: bool
) -> Validation:
    """Inner split of the training interactions by the protocol's own splitter (``random`` or
    ``stratified``, seed ``split.seed + 1``); ``seen``: exclude inner-train items."""
    inner, valid = SPLITTERS[params.protocol](train, params.test_ratio, params.seed + 1)
    inp = split_inputs(inner.cache(), catalog, seen, ())
    return Validation(inp, valid)


def validation_last_order(
    ctx: JobContext, train_events: DataFrame, as_of: dt.date, catalog: DataFrame,
    params: RecParams,
) -> Validation:  # fmt: skip
    """Next basket one order earlier: each user's last training order (the second-to-last
    order) predicted from the orders before it."""
    inner_events, valid = split_last_order(train_events)
    inner = interactions(
        inner_events, as_of, params.event_weights, params.half_life_days, params.lookback_days
    ).cache()
    inp = split_inputs(inner, catalog, params.exclude_bought, params.repeat_categories,
                       ordered_events(ctx, inner_events, as_of))  # fmt: skip
    return Validation(inp, valid.join(inp.users.select("user_id"), "user_id"))


def tune(spark: SparkSession, val: Validation, catalog: DataFrame, params: RecParams) -> Tuning:
    """EASE λ, then (``blend.mode: tuned``) the blend weights, all on ``val``."""
    inp = val.inputs
    lam, lam_results, gram = tune_ease(
        spark, inp.interactions, val.truth, inp.exclude, catalog, params
    )
    tuning = Tuning(
        lam,
        lam_results,
        params.weights(),
        str(params.blend["normalise"]),
        float(params.blend.get("rrf_k", 10.0)),
    )
    if params.blend_mode != "tuned":
        inp.interactions.unpersist()
        return tuning
    fitted = fit_sources(spark, inp, params, lam, gram)
    objective = str(params.blend.get("objective", "ndcg@10"))
    frame = validation_frame(
        fitted.candidates,
        val.truth,
        inp.users,
        fitted.fallback if fitted.fallback is not None else fitted.candidates["popularity"],
        catalog,
        inp.exclude,
        inp.repeat_categories,
        int(params.blend.get("tune_users", 5000)),
        params.seed,
    )
    release(fitted)
    inp.interactions.unpersist()
    tuned = tune_weights(
        frame,
        params.weights(),
        params.blend_grid,
        objective,
        params.max_per_category,
        int(params.blend.get("passes", 2)),
        params.normalise_grid,
        bool(params.blend.get("both_halves", True)),
    )
    tuning.weights = tuned.weights
    tuning.normalise, tuning.rrf_k = tuned.normalise, tuned.rrf_k
    tuning.blend_validation = {**tuned.start, "hybrid": tuned.value}
    return tuning


def tune_ease(
    spark: SparkSession,
    inter: DataFrame,
    truth: DataFrame,
    exclude: DataFrame | None,
    catalog: DataFrame,
    params: RecParams,
) -> tuple[float | None, dict[str, float], Gram | None]:
    """The λ of ``ease.lambdas`` with the best NDCG@10 of EASE alone (same rules and fill),
    its NDCG@10 per λ and the Gram matrix (reused to fit the validation candidates)."""
    lambdas = [float(v) for v in params.ease["lambdas"]]
    if params.weights().get("ease", 0.0) <= 0 or not lambdas:
        return None, {}, None
    inter = inter.cache()
    gram = gram_matrix(spark, inter, int(params.ease["max_items"]), int(params.ease["min_users"]))
    if gram is None:
        return None, {}, None
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
    return best, results, gram


def evaluate_time(
    ctx: JobContext, events: DataFrame, catalog: DataFrame, as_of: dt.date, params: RecParams
) -> Evaluated:
    """Fit on interactions up to ``as_of - H``, evaluate on the purchases of the last H days;
    tuned on the V days before the cutoff."""
    windows = time_windows(as_of, params)
    cutoff = windows.holdout_start
    tuning = tune(
        ctx.spark, validation_time(ctx, events, catalog, windows, params), catalog, params
    )
    inp = time_inputs(ctx, events, catalog, cutoff, params)
    truth = truth_window(events, cutoff, as_of, params.truth_event_types).join(
        inp.users.select("user_id"), "user_id"
    )
    return (*_evaluate(ctx, inp, truth, params, tuning), tuning)


def evaluate_random(
    ctx: JobContext, events: DataFrame, catalog: DataFrame, as_of: dt.date, params: RecParams
) -> Evaluated:
    """Split protocols (``random``: each pair on its own; ``stratified``: each user's pairs by
    the ratio) of the interactions up to the as-of day; items seen in training removed from
    the ranking, binary relevance."""
    inter = interactions(
        events, as_of, params.event_weights, params.half_life_days, params.lookback_days
    )
    train, test = SPLITTERS[params.protocol](inter, params.test_ratio, params.seed)
    train = train.cache()
    tuning = tune(ctx.spark, validation_split(train, catalog, params, True), catalog, params)
    inp = split_inputs(train, catalog, True, ())
    return (*_evaluate(ctx, inp, test, params, tuning), tuning)


def evaluate_last_order(
    ctx: JobContext, events: DataFrame, catalog: DataFrame, as_of: dt.date, params: RecParams
) -> Evaluated:
    """Next-basket protocol (Instacart): predict each user's last order from the earlier ones;
    tuned on predicting each user's second-to-last order from the ones before it.

    Already-bought items are excluded only when ``exclude_bought`` (set it false for
    next-basket data, where most of a basket is re-orders)."""
    train_events, truth = split_last_order(point_in_time(events, as_of))
    train_events = train_events.cache()
    val = validation_last_order(ctx, train_events, as_of, catalog, params)
    tuning = tune(ctx.spark, val, catalog, params)
    train = interactions(
        train_events, as_of, params.event_weights, params.half_life_days, params.lookback_days
    ).cache()
    inp = split_inputs(train, catalog, params.exclude_bought, params.repeat_categories,
                       ordered_events(ctx, train_events, as_of))  # fmt: skip
    truth = truth.join(inp.users.select("user_id"), "user_id")  # users with an earlier order
    return (*_evaluate(ctx, inp, truth, params, tuning), tuning)


# the deep sources (off by default): when the chosen blend weights one, the holdout also
# ranks the blend without it, so its contribution gets a paired interval of its own
ABLATED = ("twotower", "sasrec")


def _evaluate(
    ctx: JobContext, inp: Inputs, truth: DataFrame, params: RecParams, tuning: Tuning
) -> tuple[dict[str, dict[str, float]], Comparison, Fitted]:
    """Every list's metrics on ``truth``, and bootstrap intervals over its users of the
    ``evaluation.ranking_metrics`` with paired differences hybrid - each source."""
    spark = ctx.spark
    truth = truth.cache()
    if truth.limit(1).count() == 0:
        raise InputError(
            "the evaluation holdout has no relevant interactions: use a later --as-of or a "
            "longer recommender.holdout_days"
        )
    fitted = fit_sources(spark, inp, params, tuning.ease_lambda)
    lists = final_lists(inp, fitted, tuning.blend_params(params), max(params.k, *params.eval_ks),
                        ablate=ABLATED)  # fmt: skip
    lists = {name: df.cache() for name, df in lists.items()}
    catalog_size = inp.catalog.select("item_id").distinct().count()
    metrics = evaluate_lists(
        lists, truth, params.eval_ks, catalog_size, novelty_counts(inp.interactions, inp.catalog)
    )
    comparison = list_comparison(
        lists,
        truth,
        [str(m) for m in ctx.cfg.get("evaluation.ranking_metrics")],
        BootstrapSettings.from_config(ctx.cfg),
        model="hybrid",
        split=SPLIT_NAMES[params.protocol],
    )
    for df in lists.values():
        df.unpersist()
    truth.unpersist()
    return metrics, comparison, fitted


def promote(
    registry: Registry, mv: ModelVersion, metrics: dict[str, dict[str, float]], split: str,
    params: RecParams,
) -> tuple[bool, float | None]:  # fmt: skip
    """Move ``current`` to ``mv`` unless the current version's hybrid
    ``promotion.metric`` on the same protocol (``split``) is better by more than
    ``promotion.min_delta``. Returns (promoted, the current version's value)."""
    metric = params.promotion_metric
    return registry.promote_if_not_worse(
        mv, metric, metrics["hybrid"][metric], params.promotion_min_delta, key=(split, "hybrid")
    )


def train_body(ctx: JobContext) -> None:
    params = RecParams.from_config(ctx.cfg.section("recommender"))
    use_cache_dir(ctx.spark, ctx.cfg, ctx.lake.root)  # two-tower
    events = ctx.lake.read("bronze.events")
    as_of = ctx.as_of or _latest_day(events)
    events = without_flagged(events, ctx.lake, ctx.cfg, as_of, ctx.run.metrics)
    catalog = catalog_frame(ctx, events, as_of).cache()
    cutoff = as_of - dt.timedelta(days=params.holdout_days)
    evaluate = {
        "time": evaluate_time, "random": evaluate_random, "stratified": evaluate_random,
        "last_order": evaluate_last_order,
    }[params.protocol]  # fmt: skip
    metrics, comparison, fitted, tuning = evaluate(ctx, events, catalog, as_of, params)
    release(fitted)
    split = SPLIT_NAMES[params.protocol]
    objective = str(params.blend.get("objective", "ndcg@10"))
    registry = Registry.from_config(ctx.cfg, ctx.lake.root)
    mv = registry.new_version(MODEL)
    try:
        info: dict[str, Any] = {
            "model": MODEL,
            "as_of": as_of.isoformat(),
            "cutoff": cutoff.isoformat(),
            "protocol": params.protocol,
            "ease_lambda": tuning.ease_lambda,
            "ease_used": fitted.gram is not None,
            "ease_validation_ndcg@10": tuning.ease_validation,
            "blend_mode": params.blend_mode,
            "blend_weights": tuning.weights,
            "blend_normalise": tuning.normalise,
            "blend_rrf_k": tuning.rrf_k,
            f"blend_validation_{objective}": tuning.blend_validation,
            "recommender": ctx.cfg.section("recommender"),
            "trained_at": dt.datetime.now(dt.UTC).isoformat(),
            "events_version": ctx.lake.version("bronze.events"),
        }
        (mv.path / "params.json").write_text(json.dumps(info, indent=2, default=str))
        (mv.path / "metrics.json").write_text(json.dumps({split: metrics}, indent=2))
        now, run_id = dt.datetime.now(dt.UTC), ctx.run.run_id
        with_ci = {(a, m) for a, by_metric in comparison.intervals.items() for m in by_metric}
        rows = comparison_rows(MODEL, mv.version, comparison, run_id, now)
        rows += [
            metric_row(MODEL, mv.version, algo, split, metric, value, run_id, now)
            for algo, values in metrics.items()
            for metric, value in values.items()
            if (algo, metric) not in with_ci
        ]
        rows += [
            metric_row(MODEL, mv.version, "ease", "validation", f"ndcg@10:{key}", v, run_id, now)
            for key, v in tuning.ease_validation.items()
        ]
        rows += [
            metric_row(MODEL, mv.version, "hybrid_config" if name == "config" else name,
                       "validation", objective, v, run_id, now)
            for name, v in tuning.blend_validation.items()
        ]  # fmt: skip
        rows += [
            metric_row(MODEL, mv.version, "hybrid", "validation", f"weight:{name}", w, run_id, now)
            for name, w in tuning.weights.items()
        ]
        write_metrics(ctx.lake, rows)
    except BaseException:
        registry.discard(mv)
        raise
    promoted, before = promote(registry, mv, metrics, split, params)
    catalog.unpersist()
    verdict = (
        "promoted to current" if promoted else f"NOT promoted: {registry.current(MODEL)} stays"
    )
    previous = "" if before is None else f"; current's {params.promotion_metric} {before:.4f}"
    weights = ", ".join(f"{k} {v:g}" for k, v in tuning.weights.items() if v > 0)
    norm = tuning.normalise if tuning.normalise == "minmax" else f"rrf:{tuning.rrf_k:g}"
    print(
        f"\nmodel {MODEL} {mv.version} ({split}, as of {as_of}, EASE lambda "
        f"{tuning.ease_lambda}, blend {params.blend_mode} {norm}: {weights}): {verdict}{previous}"
    )
    print(metrics_table(metrics, TABLE_COLUMNS))
    print(comparison_table(comparison, list(next(iter(comparison.intervals.values())))))
    ctx.run.rows_written = len(rows)
    ctx.run.metrics["promoted"] = float(promoted)
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
    use_cache_dir(ctx.spark, ctx.cfg, ctx.lake.root)  # two-tower
    registry = Registry.from_config(ctx.cfg, ctx.lake.root)
    mv = registry.get(MODEL, ctx.args.version)
    chosen = mv.read_json("params.json")
    ease_lambda = chosen.get("ease_lambda")
    if chosen.get("blend_weights"):  # what train chose (sources at weight 0 are not fitted)
        params = params.with_blend(
            {k: float(v) for k, v in chosen["blend_weights"].items()},
            chosen.get("blend_normalise"),
            chosen.get("blend_rrf_k"),
        )
    events = ctx.lake.read("bronze.events")
    events = without_flagged(events, ctx.lake, ctx.cfg, as_of, ctx.run.metrics)
    catalog = catalog_frame(ctx, events, as_of).cache()
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
    # The promise of the table: every user of the snapshot has exactly K distinct items. A
    # failure here rolls the job's writes back (Lake.transaction).
    short = (
        short_lists(written, inp.users, params.k)
        .agg(F.count(F.lit(1)).alias("users"), F.min("items").alias("fewest"))
        .first()
    )
    release(fitted)
    catalog.unpersist()
    if short is not None and short["users"]:
        raise ShortListsError(
            f"{short['users']} of {n_users} users of the {as_of} snapshot got fewer than "
            f"recommender.k={params.k} distinct items (fewest: {short['fewest']}): the items "
            "left after the rules (catalogue, already bought) are too few; lower "
            "recommender.k or raise recommender.fallback_n"
        )
    ctx.run.rows_read = n_users
    ctx.run.rows_written = n_rows
    ctx.run.metrics["users"] = float(n_users)
    log.info(
        "recommendations as of %s: %d rows for %d users (%s)", as_of, n_rows, n_users, mv.version
    )


# -- entry points --------------------------------------------------------------------------------
def add_train_args(parser: argparse.ArgumentParser) -> None:
    # accepted so that ``train --model recommender`` (an alias) parses the same
    parser.add_argument("--model", default=MODEL, choices=[MODEL])


def add_score_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=MODEL, choices=[MODEL])
    parser.add_argument("--version", default=None, help="model version (default: current)")


TRAIN_RECOMMENDER = Job(
    name="train_recommender",
    description="Fit and evaluate the recommender sources and the hybrid; register a version.",
    add_args=add_train_args,
    body=train_body,
    reads=(*BUILD_PROFILES.reads, "gold.user_profiles", "gold.user_segments",
           "gold.model_metrics"),
    writes=("gold.model_metrics", "gold.user_profiles", f"registry/{MODEL}"),
    builds=("gold.user_profiles",),
)  # fmt: skip
SCORE_RECOMMENDER = Job(
    name="score_recommender",
    description="Top-K recommendations for every user of the as-of profile snapshot; similar "
    "items.",
    add_args=add_score_args,
    body=score_body,
    reads=(
        "bronze.events",
        "bronze.items",
        "gold.user_profiles",
        "gold.user_segments",
        f"registry/{MODEL}",
        "gold.user_anomalies",
    ),
    writes=("gold.recommendations", "gold.similar_items"),
)


def train_main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return TRAIN_RECOMMENDER.main(argv, spark)


def score_main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return SCORE_RECOMMENDER.main(argv, spark)
