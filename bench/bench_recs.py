"""Benchmark: top-10 for every user with item-CF, EASE and MLlib ALS (``recommendForAllUsers``,
the reference) on one synthetic implicit-feedback matrix.

Interactions are drawn in-process (no lake): each user picks ``--per-user`` items from a
Zipf-like popularity within one favourite category. Timed per method (wall time, each fully
materialised with a count): item-CF = similarity (self-join, top-50 neighbours) + user scoring;
EASE = Gram on Spark + driver solve + blockwise scoring; ALS = fit + recommendForAllUsers
(reported separately). The two-tower retrieval is not benchmarked (not implemented).

    .venv/bin/python bench/bench_recs.py [--users 100000 --items 10000 --per-user 20]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable

import numpy as np
from pyspark.sql import DataFrame, SparkSession


def interactions_frame(
    spark: SparkSession, users: int, items: int, per_user: int, seed: int
) -> DataFrame:
    rng = np.random.default_rng(seed)
    categories = max(1, items // 200)
    item_cat = rng.integers(0, categories, items)
    by_cat = [np.flatnonzero(item_cat == c) for c in range(categories)]
    rows: list[tuple[str, str, float]] = []
    for u in range(users):
        pool = by_cat[int(rng.integers(0, categories))]
        if len(pool) == 0:
            pool = np.arange(items)
        p = 1.0 / (np.arange(len(pool)) + 1.0) ** 1.1
        k = min(per_user, len(pool))
        chosen = rng.choice(pool, size=k, replace=False, p=p / p.sum())
        rows.extend((f"u{u}", f"i{i}", 1.0 + float(rng.random())) for i in chosen)
    return spark.createDataFrame(rows, "user_id STRING, item_id STRING, weight DOUBLE")


def timed(label: str, fn: Callable[[], int]) -> float:
    started = time.monotonic()
    n = fn()
    seconds = time.monotonic() - started
    print(f"{label:<34}{seconds:>10.1f} s   ({n} rows)", flush=True)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--per-user", dest="per_user", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--env", default="local")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    from shopperlake.config import load_config
    from shopperlake.rec.als import fit_als
    from shopperlake.rec.ease import ease_weights, gram_matrix, score_ease
    from shopperlake.rec.itemcf import item_similarity, recommend_itemcf
    from shopperlake.rec.params import RecParams
    from shopperlake.session import build_session

    cfg = load_config(args.env)
    params = RecParams.from_config(cfg.section("recommender"))
    spark = build_session(cfg, "shopperlake-bench-recs")
    inter = interactions_frame(spark, args.users, args.items, args.per_user, args.seed).cache()
    print(f"{inter.count()} interactions, {args.users} users x {args.items} items", flush=True)

    def itemcf() -> int:
        cf = params.itemcf
        sims = item_similarity(
            inter, str(cf["similarity"]), int(cf["min_support"]), int(cf["neighbours"]),
            int(cf["max_items_per_user"]),
        )  # fmt: skip
        return recommend_itemcf(inter, sims, 10).count()

    def ease() -> int:
        gram = gram_matrix(spark, inter, int(params.ease["max_items"]))
        if gram is None:
            return 0
        b = ease_weights(gram.matrix, float(params.ease["lambdas"][-1]))
        return score_ease(
            spark, inter, gram.item_ids, b, 10, int(params.ease["block_items"])
        ).count()

    fitted: dict[str, object] = {}

    def als_fit() -> int:
        model, users, _ = fit_als(spark, inter, params.als)
        fitted["model"] = model
        return users.count()

    def als_recommend() -> int:
        return fitted["model"].recommendForAllUsers(10).count()  # type: ignore[attr-defined]

    t_cf = timed("item-CF (fit + top-10 all users)", itemcf)
    t_ease = timed("EASE (fit + top-10 all users)", ease)
    t_fit = timed("ALS fit", als_fit)
    t_all = timed("ALS recommendForAllUsers(10)", als_recommend)
    print(f"ALS fit + recommendForAllUsers: {t_fit + t_all:.1f} s")
    print(f"speed-up vs ALS recommendForAllUsers alone: item-CF {t_all / t_cf:.2f}x, "
          f"EASE {t_all / t_ease:.2f}x")  # fmt: skip
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
