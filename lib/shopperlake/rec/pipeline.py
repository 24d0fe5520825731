"""Fit every candidate source on one set of interactions and produce the final lists."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shopperlake.rec.als import fit_als, recommend_als
from shopperlake.rec.content import item_features, recommend_content
from shopperlake.rec.ease import Gram, ease_weights, gram_matrix, score_ease
from shopperlake.rec.hybrid import blend, finalise
from shopperlake.rec.itemcf import item_similarity, recommend_itemcf
from shopperlake.rec.params import RecParams
from shopperlake.rec.popularity import recommend_popular, segment_popularity
from shopperlake.rec.repeat import recommend_repeat
from shopperlake.rec.sasrec_source import recommend_sasrec
from shopperlake.rec.twotower import fit_twotower, recommend_twotower, resolve_cache_dir

log = logging.getLogger(__name__)


@dataclass
class Inputs:
    """What the sources need: training interactions and the context of the users to serve."""

    interactions: DataFrame  # (user_id, item_id, weight)
    users: DataFrame  # (user_id, segment): everybody who gets a list
    affinities: DataFrame  # (user_id, category, share, user_band) for the content source
    catalog: DataFrame  # (item_id, category, price)
    popularity: DataFrame  # (item_id, count): recent popularity
    exclude: DataFrame | None  # (user_id, item_id) not to recommend (bought / seen)
    repeat_categories: tuple[str, ...] = ()
    # point-in-time event sequences (seqmodel.build.user_sequences) of the same cutoff, for
    # the order-aware sasrec source; None where the protocol has no order (random splits)
    sequences: DataFrame | None = None


@dataclass
class Fitted:
    candidates: dict[str, DataFrame] = field(default_factory=dict)  # source → candidates
    similar: DataFrame | None = None  # item-CF neighbours
    fallback: DataFrame | None = None  # per-user popularity list
    gram: Gram | None = None
    ease_lambda: float | None = None
    cached: list[DataFrame] = field(default_factory=list)  # other frames to unpersist


def fit_sources(
    spark: SparkSession,
    inp: Inputs,
    params: RecParams,
    ease_lambda: float | None,
    gram: Gram | None = None,
    cache_dir: str | None = None,
) -> Fitted:
    """Candidate lists of every source with a positive blend weight (plus popularity, always).

    ``cache_dir``: Petastorm cache for the two-tower's training data (``training.cache``
    or ``<lake>/_petastorm_cache``); None: the session's (an error when unset)."""
    n = params.candidates
    weights = params.weights()
    inter = inp.interactions.cache()
    out = Fitted()
    popular = segment_popularity(inter, inp.users.select("user_id", "segment"), params.fallback_n)
    out.fallback = recommend_popular(inp.users, popular).cache()
    out.candidates["popularity"] = out.fallback
    cf = params.itemcf
    out.similar = item_similarity(
        inter,
        str(cf["similarity"]),
        int(cf["min_support"]),
        int(cf["neighbours"]),
        int(cf["max_items_per_user"]),
    ).cache()
    if weights.get("itemcf", 0.0) > 0:
        out.candidates["itemcf"] = recommend_itemcf(inter, out.similar, n).cache()
    if weights.get("ease", 0.0) > 0:
        out.gram = gram or gram_matrix(
            spark, inter, int(params.ease["max_items"]), int(params.ease["min_users"])
        )
        if out.gram is not None:
            lam = ease_lambda if ease_lambda is not None else float(params.ease["lambdas"][0])
            out.ease_lambda = lam
            b = ease_weights(out.gram.matrix, lam)
            out.candidates["ease"] = score_ease(
                spark, inter, out.gram.item_ids, b, n, int(params.ease["block_items"])
            ).cache()
    if weights.get("als", 0.0) > 0:
        model, users, items = fit_als(spark, inter, params.als)
        out.candidates["als"] = recommend_als(model, users, items, n).cache()
    if weights.get("content", 0.0) > 0:
        feats = item_features(
            inp.catalog, inp.popularity, int(params.content["items_per_category"])
        ).cache()
        out.candidates["content"] = recommend_content(
            inp.affinities, feats, n, float(params.content["price_weight"])
        ).cache()
    if weights.get("repeat", 0.0) > 0:
        out.candidates["repeat"] = recommend_repeat(inter, n).cache()
    if weights.get("twotower", 0.0) > 0:
        towers = fit_twotower(spark, inter, inp.catalog, inp.affinities, params.twotower, cache_dir)
        out.candidates["twotower"] = recommend_twotower(spark, towers, inp.users, n).cache()
        out.cached.append(towers.profiles)  # the user features the candidates are built from
    if weights.get("sasrec", 0.0) > 0:
        out.candidates["sasrec"] = recommend_sasrec(
            spark, inp.sequences, inp.users, params.sasrec, n, resolve_cache_dir(spark, cache_dir)
        )
    return out


def final_lists(
    inp: Inputs,
    fitted: Fitted,
    params: RecParams,
    k: int,
    sources: bool = True,
    ablate: Sequence[str] = (),
) -> dict[str, DataFrame]:
    """The hybrid and (when ``sources``) every source alone, each through the same rules and
    popularity fill, top-``k``. The blend is ``params.blend`` (the tuned one when train tuned
    it: :meth:`RecParams.with_blend`). For every source of ``ablate`` the blend weights, also
    ``hybrid_without_<source>``: the same blend with that source's weight set to 0 (an
    ablation of the chosen blend, not re-tuned), where that weight and another are positive."""
    assert fitted.fallback is not None
    lists: dict[str, DataFrame] = {}
    for name, cands in fitted.candidates.items() if sources else ():
        named = cands.withColumn("source", F.lit(name))
        lists[name] = finalise_with(named, inp, fitted, params, k)
    weights = params.weights()
    variants = {"hybrid": weights}
    for name in ablate:
        rest = {**weights, name: 0.0}
        others = any(v > 0 for n, v in rest.items() if n in fitted.candidates)
        if weights.get(name, 0.0) > 0 and name in fitted.candidates and others:
            variants[f"hybrid_without_{name}"] = rest
    for label, w in variants.items():
        blended = blend(
            fitted.candidates,
            w,
            str(params.blend["normalise"]),
            float(params.blend.get("rrf_k", 10.0)),
        )
        lists[label] = finalise_with(blended, inp, fitted, params, k)
    return lists


def finalise_with(
    cands: DataFrame, inp: Inputs, fitted: Fitted, params: RecParams, k: int
) -> DataFrame:
    assert fitted.fallback is not None
    return finalise(
        cands,
        inp.users,
        fitted.fallback,
        inp.catalog,
        inp.exclude,
        k,
        params.max_per_category,
        inp.repeat_categories,
    )


def release(fitted: Fitted) -> None:
    for df in fitted.candidates.values():
        df.unpersist()
    if fitted.similar is not None:
        fitted.similar.unpersist()
    for df in fitted.cached:
        df.unpersist()
