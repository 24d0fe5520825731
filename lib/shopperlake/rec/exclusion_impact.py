"""Does leaving bots out change the recommender? The check behind ``anomalies.exclude``.

The recommender's time protocol once per variant of the training events: every user's events
(``all traffic``) and the same events without the users of each other variant (e.g. the
detector's bot alerts as of the cutoff, which is what the exclusion switch leaves out, and the
planted bots, the oracle). Each variant fits item-CF, EASE (one fixed λ), their blend and the
popularity list on the interactions up to the cutoff and ranks the same evaluation users (e.g.
planted normal users with a purchase in the holdout), with the same serving rules (bought
items excluded, category cap, popularity fill from that variant's own interactions). Per-user
recall and NDCG on the holdout purchases; paired bootstrap differences (variant minus all
traffic) over the evaluation users.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shopperlake.rec.content import interaction_affinities
from shopperlake.rec.interactions import bought, interactions, truth_window
from shopperlake.rec.params import RecParams
from shopperlake.rec.pipeline import Inputs, final_lists, fit_sources, release
from shopperlake.training.bootstrap import mean_stat
from shopperlake.training.model_metrics import BootstrapSettings, Comparison, compare
from shopperlake.training.ranking import per_user_ranking_metrics

BASE = "all traffic"
SOURCES = ("itemcf", "ease", "hybrid", "popularity")  # hybrid: item-CF + EASE, rrf
METRICS = ("recall@10", "ndcg@10")


@dataclass(frozen=True)
class Impact:
    """Per-user metrics (``values[variant][list]``: user_id and METRICS, sorted by user) and,
    per list and non-base variant, the comparison ``variant - all traffic``."""

    users: int
    values: dict[str, dict[str, pd.DataFrame]]
    comparisons: dict[tuple[str, str], Comparison]


def exclusion_impact(
    spark: SparkSession,
    events: DataFrame,
    catalog: DataFrame,
    params: RecParams,
    cutoff: dt.date,
    end: dt.date,
    eval_users: DataFrame,
    excluded: Mapping[str, DataFrame],
    ease_lambda: float,
    settings: BootstrapSettings,
) -> Impact:
    """``excluded``: variant name → (user_id) whose events that variant leaves out. Fits on
    events up to the end of ``cutoff``; relevant items: ``truth_event_types`` events of the
    evaluation users on days ``cutoff < day <= end``."""
    if BASE in excluded:
        raise ValueError(f"'{BASE}' is the variant without exclusion: name the others otherwise")
    truth = (
        truth_window(events, cutoff, end, params.truth_event_types)
        .join(eval_users.select("user_id").distinct(), "user_id")
        .cache()
    )
    users = truth.select("user_id").distinct().withColumn("segment", F.lit(None).cast("string"))
    users = users.cache()
    n_users = users.count()
    if n_users == 0:
        raise ValueError(f"no evaluation user has a relevant event in ({cutoff}, {end}]")
    fit_params = params.with_blend({"itemcf": 1.0, "ease": 1.0}, "rrf", 10.0)
    seen = bought(events, cutoff).join(users.select("user_id"), "user_id")
    variants: dict[str, DataFrame] = {BASE: events}
    for name, gone in excluded.items():
        variants[name] = events.join(F.broadcast(gone.select("user_id").distinct()), "user_id",
                                     "left_anti")  # fmt: skip
    values: dict[str, dict[str, pd.DataFrame]] = {}
    for name, ev in variants.items():
        inter = interactions(
            ev, cutoff, params.event_weights, params.half_life_days, params.lookback_days
        ).cache()
        inp = Inputs(
            interactions=inter,
            users=users,
            affinities=interaction_affinities(inter, catalog),
            catalog=catalog,
            popularity=inter.groupBy("item_id").agg(F.count(F.lit(1)).alias("count")),
            exclude=seen,
        )
        fitted = fit_sources(spark, inp, fit_params, ease_lambda)
        lists = final_lists(inp, fitted, fit_params, 10)
        values[name] = {
            source: _per_user(lists[source], truth) for source in SOURCES if source in lists
        }
        release(fitted)
        inter.unpersist()
    truth.unpersist()
    users.unpersist()
    return Impact(n_users, values, _compare(values, n_users, settings))


def _per_user(recs: DataFrame, truth: DataFrame) -> pd.DataFrame:
    frame = per_user_ranking_metrics(recs, truth, (10,)).select(
        "user_id", *[F.col(f"`{m}`") for m in METRICS]
    )
    out: pd.DataFrame = frame.toPandas()
    return out.sort_values("user_id", kind="stable").reset_index(drop=True)


def _compare(
    values: dict[str, dict[str, pd.DataFrame]], n_users: int, settings: BootstrapSettings
) -> dict[tuple[str, str], Comparison]:
    out: dict[tuple[str, str], Comparison] = {}
    base = values[BASE]
    for variant, lists in values.items():
        if variant == BASE:
            continue
        for source, frame in lists.items():
            ref = base[source]
            if not frame["user_id"].equals(ref["user_id"]) or len(frame) != n_users:
                raise ValueError(f"{source}: '{variant}' was evaluated on other users")
            stats = {
                f"{source}, {name}": {
                    m: mean_stat(df[m].to_numpy(dtype=np.float64)) for m in METRICS
                }
                for name, df in ((variant, frame), (BASE, ref))
            }
            out[(source, variant)] = compare(
                stats, n_users, f"{source}, {variant}", "bot_exclusion", settings
            )
    return out
