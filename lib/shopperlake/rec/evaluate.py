"""Offline evaluation: time-based holdout, random and per-user stratified splits, next basket;
every list side by side (ranking metrics from :mod:`shopperlake.training.ranking`, on Spark)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from shopperlake.training.bootstrap import mean_stat
from shopperlake.training.model_metrics import BootstrapSettings, Comparison, compare
from shopperlake.training.ranking import (
    coverage,
    novelty,
    per_user_ranking_metrics,
    ranking_metrics,
)


def random_split(
    interactions: DataFrame, test_ratio: float, seed: int
) -> tuple[DataFrame, DataFrame]:
    """Random split of (user, item) pairs, each pair on its own: (train, test).

    Every pair goes to test when a seeded hash of (user, item) falls below ``test_ratio``,
    independently of the user's other pairs (protocol ``random``); users with a single pair
    keep it in train. The share is ``test_ratio`` only on average: a user can have no test
    pair, or every pair in test (nothing left to learn from). :func:`stratified_split` splits
    each user's pairs by the ratio instead.
    """
    u = F.abs(F.xxhash64("user_id", "item_id", F.lit(seed))) % 1_000_000 / 1_000_000.0
    n = F.count(F.lit(1)).over(Window.partitionBy("user_id"))
    marked = interactions.withColumn("_test", (u < F.lit(test_ratio)) & (n > 1))
    train = marked.where(~F.col("_test")).drop("_test")
    test = marked.where(F.col("_test")).select("user_id", "item_id")
    return train, test


def stratified_split(
    interactions: DataFrame, test_ratio: float, seed: int
) -> tuple[DataFrame, DataFrame]:
    """Per-user stratified split of (user, item) pairs: (train, test).

    Each user's ``n`` pairs are ordered by ``xxhash64(user_id, item_id, seed)`` (ties by item
    id) and the first ``min(round_half_up(test_ratio * n), n - 1)`` go to test: every user
    with two pairs or more keeps at least one in train, a user with one pair keeps it in
    train, and the same seed gives the same split (protocol ``stratified``).
    """
    w = Window.partitionBy("user_id")
    position = F.row_number().over(
        w.orderBy(F.xxhash64("user_id", "item_id", F.lit(seed)), F.col("item_id"))
    )
    n = F.count(F.lit(1)).over(w)
    # round half up; the epsilon keeps e.g. 0.7 * 5 = 3.4999999999999996 at 3.5 -> 4
    n_test = F.least(F.floor(n * F.lit(float(test_ratio)) + F.lit(0.5 + 1e-9)), n - 1)
    marked = interactions.withColumn("_test", position <= n_test)
    train = marked.where(~F.col("_test")).drop("_test")
    test = marked.where(F.col("_test")).select("user_id", "item_id")
    return train, test


def split_last_order(events: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Next-basket protocol: (events without each user's last order, items of that order).

    The last order is the purchase order with the latest timestamp (ties: the larger id).
    Events without an order id stay in the training events.
    """
    orders = events.where((F.col("event_type") == "purchase") & F.col("order_id").isNotNull())
    last = orders.groupBy("user_id").agg(
        F.max(F.struct("ts", "order_id"))["order_id"].alias("order_id")
    )
    truth = (
        orders.join(last, ["user_id", "order_id"])
        .where(F.col("item_id").isNotNull())
        .select("user_id", "item_id")
        .distinct()
    )
    train = events.join(last, ["user_id", "order_id"], "left_anti")
    return train, truth


def novelty_counts(interactions: DataFrame, catalog: DataFrame) -> DataFrame:
    """(item_id, count): training users per item plus one (so every catalogue item has a
    finite self-information)."""
    seen = interactions.groupBy("item_id").agg(F.count(F.lit(1)).alias("n"))
    return (
        catalog.select("item_id")
        .distinct()
        .join(seen, "item_id", "left")
        .select("item_id", (F.coalesce(F.col("n"), F.lit(0)) + 1).alias("count"))
    )


def evaluate_lists(
    lists: Mapping[str, DataFrame],
    truth: DataFrame,
    ks: Sequence[int],
    catalog_size: int,
    popularity: DataFrame,
) -> dict[str, dict[str, float]]:
    """``{list name: {metric@k: value}}`` with precision/recall/ndcg/map/hit_rate, coverage and
    novelty for each k."""
    out: dict[str, dict[str, float]] = {}
    for name, recs in lists.items():
        metrics = ranking_metrics(recs, truth, ks)
        for k in ks:
            metrics[f"coverage@{k}"] = coverage(recs, catalog_size, k)
            metrics[f"novelty@{k}"] = novelty(recs, popularity, k)
        out[name] = metrics
    return out


def metrics_table(metrics: Mapping[str, Mapping[str, float]], columns: Sequence[str]) -> str:
    """Plain-text table, one row per list."""
    lines = [f"{'source':<12}" + "".join(f"{c:>13}" for c in columns)]
    for name, values in metrics.items():
        lines.append(
            f"{name:<12}" + "".join(f"{values.get(c, float('nan')):>13.4f}" for c in columns)
        )
    return "\n".join(lines)


def list_comparison(
    lists: Mapping[str, DataFrame],
    truth: DataFrame,
    metrics: Sequence[str],
    settings: BootstrapSettings,
    model: str = "hybrid",
    split: str = "holdout",
) -> Comparison:
    """Bootstrap intervals over truth users of each list's ``metrics`` (``"ndcg@10"``, ...),
    and paired differences ``model - list`` on the same resampled users.

    Only the per-user values reach the driver (one float per truth user, list and metric).
    """
    ks = sorted({int(m.split("@")[1]) for m in metrics})
    frames: dict[str, pd.DataFrame] = {}
    for name, recs in lists.items():
        per_user = per_user_ranking_metrics(recs, truth, ks)
        values: pd.DataFrame = per_user.select(
            "user_id", *[F.col(f"`{m}`") for m in metrics]
        ).toPandas()
        frames[name] = values.sort_values("user_id", kind="stable").reset_index(drop=True)
    users = next(iter(frames.values()))["user_id"]
    for name, frame in frames.items():
        if not frame["user_id"].equals(users):
            raise ValueError(f"list_comparison: list '{name}' was evaluated on other users")
    stats = {
        name: {m: mean_stat(frame[m].to_numpy(dtype=np.float64)) for m in metrics}
        for name, frame in frames.items()
    }
    return compare(stats, len(users), model, split, settings)
