"""Blend weights tuned on validation data (never the test holdout).

The candidate lists of every source, fitted once on a protocol's inner split, are normalised
exactly as :func:`shopperlake.rec.hybrid.blend` does, put through the rules of
:func:`shopperlake.rec.hybrid.finalise` that do not depend on the score (catalogue, already
bought) and collected for a bounded sample of validation users into a :class:`Frame` on the
driver. Any weight vector is then scored there in milliseconds (weighted sum, popularity fill
below every candidate, per-category cap with over-cap items last, top-k, metric against the
validation truth), so a coordinate ascent over a small grid is cheap. It starts from the best
of the config weights and every source alone, so on validation the tuned hybrid is never worse
than its best source; it runs once per candidate normalisation (reciprocal rank with some
``rrf_k``, or min-max).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from shopperlake.rec.hybrid import FALLBACK_OFFSET, drop_bought

log = logging.getLogger(__name__)
OBJECTIVES = ("ndcg", "recall", "precision", "hit_rate")
_FALLBACK = "_fallback"


@dataclass(frozen=True)
class Frame:
    """Validation candidates on the driver, one row per (user, item) the hybrid may rank.

    ``user``: code 0..n_users-1; ``item``: code in ``item_id`` order (the tie-break of
    ``finalise``); ``category``: code (an item without category has a code of its own);
    ``fallback``: popularity score minus the fallback offset (NaN when the item is not in the
    user's popularity list); ``ranks``: one column per source,
    the item's rank in the source's list (0 when absent); ``minmax``: its per-user min-max
    score; ``label``: item in the user's validation truth; ``n_relevant``: truth size per user
    code (users without any candidate still count).
    """

    sources: tuple[str, ...]
    user: np.ndarray
    item: np.ndarray
    category: np.ndarray
    fallback: np.ndarray
    ranks: np.ndarray
    minmax: np.ndarray
    label: np.ndarray
    n_relevant: np.ndarray

    def norms(self, method: str, rrf_k: float) -> np.ndarray:
        """Per-source normalised scores as :func:`shopperlake.rec.hybrid.normalise` (0 when
        absent)."""
        if method == "rrf":
            safe = np.where(self.ranks > 0, self.ranks, 1)
            return np.where(self.ranks > 0, 1.0 / (rrf_k + safe), 0.0)
        if method == "minmax":
            return np.where(self.ranks > 0, self.minmax, 0.0)
        raise ValueError(f"unknown normalisation {method!r} (rrf | minmax)")


@dataclass
class Tuned:
    weights: dict[str, float]
    normalise: str
    rrf_k: float
    value: float  # objective of the tuned blend on validation
    start: dict[str, float]  # objective of the config blend and of every source alone
    trace: list[tuple[str, dict[str, float], float]] = field(default_factory=list)


def parse_objective(objective: str) -> tuple[str, int]:
    """``"ndcg@10"`` → (``"ndcg"``, 10); a clear error for anything else."""
    name, _, k = objective.partition("@")
    if name not in OBJECTIVES or not k.isdigit() or int(k) < 1:
        raise ValueError(f"blend objective {objective!r}: <{' | '.join(OBJECTIVES)}>@<k>")
    return name, int(k)


def validation_frame(
    sources: Mapping[str, DataFrame],
    truth: DataFrame,
    users: DataFrame,
    fallback: DataFrame,
    catalog: DataFrame,
    exclude: DataFrame | None,
    repeat_categories: Sequence[str] = (),
    max_users: int = 5000,
    seed: int = 7,
) -> Frame:
    """Collect the candidates of at most ``max_users`` truth users (a seeded hash sample).

    ``sources``: (user_id, item_id, score) per source; the other arguments as for
    :func:`shopperlake.rec.hybrid.finalise`; ``truth`` (user_id, item_id) relevant items.
    """
    names = tuple(sorted(sources))
    relevant = (
        truth.select("user_id", "item_id")
        .distinct()
        .join(users.select("user_id").distinct(), "user_id")
    )
    picked = (
        relevant.select("user_id")
        .distinct()
        .withColumn("_h", F.xxhash64("user_id", F.lit(seed)))
        .orderBy("_h", "user_id")
        .limit(max_users)
        .drop("_h")
        .cache()
    )
    w = Window.partitionBy("user_id")
    lo, hi = F.min("score").over(w), F.max("score").over(w)
    parts = [
        df.join(picked, "user_id").select(
            "user_id",
            "item_id",
            F.row_number().over(w.orderBy(F.col("score").desc(), F.col("item_id"))).alias("rank"),
            F.when(hi > lo, (F.col("score") - lo) / (hi - lo)).otherwise(1.0).alias("mm"),
            F.lit(name).alias("source"),
        )
        for name, df in sources.items()
    ]
    parts.append(
        fallback.join(picked, "user_id").select(
            "user_id",
            "item_id",
            F.lit(1).alias("rank"),
            (F.col("score") - F.lit(FALLBACK_OFFSET)).alias("mm"),
            F.lit(_FALLBACK).alias("source"),
        )
    )
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    wide = (
        union.groupBy("user_id", "item_id")
        .pivot("source", [*names, _FALLBACK])
        .agg(F.first("rank").alias("rank"), F.first("mm").alias("mm"))
        .join(F.broadcast(catalog.select("item_id", "category").distinct()), "item_id")
    )
    if exclude is not None:
        wide = drop_bought(wide, exclude, repeat_categories)  # the rule the server applies
    labelled = wide.join(
        relevant.join(picked, "user_id").withColumn("label", F.lit(True)),
        ["user_id", "item_id"],
        "left",
    )
    rows: pd.DataFrame = labelled.toPandas()
    counts: pd.DataFrame = relevant.join(picked, "user_id").groupBy("user_id").count().toPandas()
    picked.unpersist()
    user_ids = sorted(counts["user_id"])
    code = {u: i for i, u in enumerate(user_ids)}
    by_user = dict(zip(counts["user_id"], counts["count"], strict=True))
    item_codes = pd.factorize(rows["item_id"], sort=True)[0]
    # A null category is no category: each such item is its own cap group (as in finalise).
    cat_codes, categories = pd.factorize(rows["category"])
    cat_codes = np.where(cat_codes < 0, len(categories) + item_codes, cat_codes)
    ranks = rows[[f"{n}_rank" for n in names]].fillna(0).to_numpy(dtype=np.int64)
    minmax = rows[[f"{n}_mm" for n in names]].astype("float64").fillna(0.0).to_numpy()
    log.info("blend tuning frame: %d users, %d candidate rows", len(user_ids), len(rows))
    return Frame(
        sources=names,
        user=rows["user_id"].map(code).to_numpy(dtype=np.int64),
        item=np.asarray(item_codes, dtype=np.int64),
        category=np.asarray(cat_codes, dtype=np.int64),
        fallback=rows[f"{_FALLBACK}_mm"].astype("float64").to_numpy(),
        ranks=ranks.reshape(-1, len(names)),
        minmax=minmax.reshape(-1, len(names)),
        label=rows["label"].notna().to_numpy(),
        n_relevant=np.array([by_user[u] for u in user_ids], dtype=np.int64),
    )


def evaluate_weights(
    frame: Frame,
    weights: Mapping[str, float],
    objective: str,
    max_per_category: int,
    normalisation: tuple[str, float] = ("rrf", 10.0),
) -> float:
    """The objective of the hybrid with ``weights`` on the frame's validation users, with the
    same ordering and rules as ``blend`` + ``finalise`` + ``ranking_metrics``;
    ``normalisation``: (method, rrf_k)."""
    per_user = per_user_objective(
        frame, weights, objective, max_per_category, frame.norms(*normalisation)
    )
    return float(per_user.mean())


def per_user_objective(
    frame: Frame,
    weights: Mapping[str, float],
    objective: str,
    max_per_category: int,
    norms: np.ndarray,
) -> np.ndarray:
    """The objective per validation user (code order); ``norms`` from :meth:`Frame.norms`."""
    name, k = parse_objective(objective)
    n_users = len(frame.n_relevant)
    if n_users == 0:
        raise ValueError("blend tuning needs at least one validation user with relevant items")
    w = np.array([float(weights.get(s, 0.0)) for s in frame.sources])
    # Sources with weight 0 are left out of the blend: an item only they propose is fill.
    present = (frame.ranks > 0) & (w > 0)
    blended = norms @ w
    score = np.where(present.any(axis=1), blended, frame.fallback)
    keep = ~np.isnan(score)
    user, item, cat = frame.user[keep], frame.item[keep], frame.category[keep]
    score, label = score[keep], frame.label[keep]
    order = np.lexsort((item, -score, user))
    user, cat, label = user[order], cat[order], label[order]
    in_cat = pd.DataFrame({"u": user, "c": cat}).groupby(["u", "c"], sort=False).cumcount()
    # The cap as in finalise: items over it follow every item within it, in the same order.
    over = in_cat.to_numpy() >= max_per_category
    again = np.lexsort((np.arange(len(user)), over, user))
    user, label = user[again], label[again]
    first = np.searchsorted(user, user, side="left")  # user is sorted: start of its block
    rank = np.arange(len(user)) - first + 1
    top = rank <= k
    user, label, rank = user[top], label[top], rank[top]
    hits = np.bincount(user, weights=label.astype(float), minlength=n_users)
    n_rel = frame.n_relevant.astype(float)
    if name == "ndcg":
        dcg = np.bincount(user, weights=label / np.log2(rank + 1.0), minlength=n_users)
        ideal = np.cumsum(1.0 / np.log2(np.arange(1, k + 1) + 1.0))
        per_user = dcg / ideal[np.minimum(frame.n_relevant, k) - 1]
    elif name == "recall":
        per_user = hits / n_rel
    elif name == "precision":
        per_user = hits / k
    else:
        per_user = (hits > 0).astype(float)
    return np.asarray(per_user, dtype=float)


def tune_weights(
    frame: Frame,
    start: Mapping[str, float],
    grid: Sequence[float],
    objective: str,
    max_per_category: int,
    passes: int = 2,
    normalisations: Sequence[tuple[str, float]] = (("rrf", 10.0),),
    both_halves: bool = False,
) -> Tuned:
    """For each normalisation, coordinate ascent over ``grid`` for each source's weight, from
    the best of ``start`` (the config weights) and every source alone; the best of those. A
    move needs a strict improvement and, with ``both_halves``, must not lower the objective on
    either half of the validation users (odd / even user codes: a guard against fitting the
    noise of a small validation set). The first normalisation is the configured one: ``start``
    values are measured with it."""
    sources = frame.sources
    config = {s: float(start.get(s, 0.0)) for s in sources}
    starts: dict[str, dict[str, float]] = {}
    if any(v > 0 for v in config.values()):
        starts["config"] = config
    for s in sources:
        starts[s] = {t: (1.0 if t == s else 0.0) for t in sources}
    odd = np.arange(len(frame.n_relevant)) % 2 == 1

    def halves(per_user: np.ndarray) -> tuple[float, float]:
        lo = float(per_user[~odd].mean()) if (~odd).any() else 0.0
        return lo, float(per_user[odd].mean()) if odd.any() else 0.0

    best: Tuned | None = None
    for method, rrf_k in normalisations:
        norms = frame.norms(method, rrf_k)

        def score(w: Mapping[str, float], norms: np.ndarray = norms) -> np.ndarray:
            return per_user_objective(frame, w, objective, max_per_category, norms)

        label = method if method == "minmax" else f"rrf:{rrf_k:g}"
        per_start = {name: score(w) for name, w in starts.items()}
        values = {name: float(p.mean()) for name, p in per_start.items()}
        first = max(values, key=lambda n: values[n])  # first of equals: config
        w_best, v_best, h_best = dict(starts[first]), values[first], halves(per_start[first])
        trace = [(label, dict(w_best), v_best)]
        for _ in range(passes):
            moved = False
            for s in sources:
                for g in grid:
                    trial = {**w_best, s: float(g)}
                    if trial == w_best or not any(v > 0 for v in trial.values()):
                        continue
                    per_user = score(trial)
                    v, h = float(per_user.mean()), halves(per_user)
                    if v <= v_best + 1e-12:
                        continue
                    if both_halves and (h[0] < h_best[0] - 1e-12 or h[1] < h_best[1] - 1e-12):
                        continue
                    w_best, v_best, h_best, moved = trial, v, h, True
                    trace.append((label, dict(w_best), v_best))
            if not moved:
                break
        log.info("blend tuning %s: from %s %.4f to %s %.4f", label, first, values[first],
                 w_best, v_best)  # fmt: skip
        if best is None:
            best = Tuned(w_best, method, rrf_k, v_best, values, trace)
        elif v_best > best.value + 1e-12:
            best = Tuned(w_best, method, rrf_k, v_best, best.start, best.trace + trace)
        else:
            best.trace += trace
    assert best is not None, "tune_weights needs at least one normalisation"
    log.info("blend tuned: %s %s:%g (%s %.4f)", best.weights, best.normalise, best.rrf_k,
             objective, best.value)  # fmt: skip
    return best
