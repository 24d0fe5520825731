"""Benchmark: top-10 for every user with item-CF, EASE, MLlib ALS (``recommendForAllUsers``,
the reference) and the two-tower retrieval on one synthetic implicit-feedback matrix.

Interactions are drawn in-process (no lake), vectorised: each user picks ``--per-user`` distinct
items of one favourite category with Zipf-like popularity (weights ``1/(rank+1)^1.1``, sampled
without replacement by the Gumbel top-k trick), weight uniform in [1, 2). The frame is cached
and counted before any timing.

Every figure is wall time with the output fully materialised: the top-10 lists are written to
Spark's ``noop`` sink (every row and column computed, nothing stored). End to end = fit + top-10
for every user; the parts are timed too:

- item-CF: similarity (top-``neighbours`` per item, cached like the pipeline does) + scoring;
- EASE: Gram (Spark → driver) + solve (driver) + scoring (Spark);
- ALS: fit, then ``recommendForAllUsers(10)``: the reference. Each method's top-10 step is
  compared with ``recommendForAllUsers(10)`` and its end-to-end time with ALS fit + it;
- two-tower: the blockwise retrieval (towers with vocabularies and user features, untrained
  weights: the cost does not depend on them); its Horovod training is timed in the README's
  quality runs, not here;
- SASRec: the score job's executor function (``sequences.sasrec`` shape, untrained weights,
  each user's 20 items as views): self-attention encoder at the last position, scores over
  every item, seen items removed, top 10; training is timed in ``bench/bench_sasrec.py``.

``--repeat R`` runs each method R times and reports the best and the median (the machine may be
shared: timings vary between runs).

    .venv/bin/python bench/bench_recs.py [--users 100000 --items 10000 --per-user 20]
        [--methods itemcf,ease,als,twotower,sasrec] [--repeat 1]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

METHODS = ("itemcf", "ease", "als", "twotower", "sasrec")
T = TypeVar("T")


def interactions_frame(
    spark: SparkSession, users: int, items: int, per_user: int, seed: int
) -> DataFrame:
    """(user_id, item_id, weight): ``per_user`` distinct items per user from one category."""
    rng = np.random.default_rng(seed)
    categories = max(1, items // 200)
    item_cat = rng.integers(0, categories, items)
    user_cat = rng.integers(0, categories, users)
    parts: list[pd.DataFrame] = []
    for c in range(categories):
        members = np.flatnonzero(user_cat == c)
        pool = np.flatnonzero(item_cat == c)
        if len(pool) == 0:
            pool = np.arange(items)
        if len(members) == 0:
            continue
        k = min(per_user, len(pool))
        log_p = -1.1 * np.log(np.arange(len(pool)) + 1.0)
        for lo in range(0, len(members), 4096):
            block = members[lo : lo + 4096]
            keys = log_p + rng.gumbel(size=(len(block), len(pool)))
            chosen = np.argpartition(-keys, k - 1, axis=1)[:, :k]
            parts.append(
                pd.DataFrame(
                    {
                        "user_id": np.char.add("u", np.repeat(block, k).astype(str)),
                        "item_id": np.char.add("i", pool[chosen.ravel()].astype(str)),
                        "weight": 1.0 + rng.random(len(block) * k),
                    }
                )
            )
    pdf = pd.concat(parts, ignore_index=True)
    pdf["user_id"] = pdf["user_id"].astype(object)
    pdf["item_id"] = pdf["item_id"].astype(object)
    return spark.createDataFrame(pdf, "user_id STRING, item_id STRING, weight DOUBLE")


def materialise(df: DataFrame) -> None:
    """Compute every row and column of ``df`` (Spark's noop sink: nothing is stored)."""
    df.write.format("noop").mode("overwrite").save()


@dataclass
class Run:
    """Wall seconds of one method's parts in one repetition."""

    parts: dict[str, float] = field(default_factory=dict)

    def timed(self, part: str, fn: Callable[[], T]) -> T:
        started = time.monotonic()
        out = fn()
        self.parts[part] = time.monotonic() - started
        return out

    @property
    def total(self) -> float:
        return sum(self.parts.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--per-user", dest="per_user", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--env", default="local")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown method(s) {sorted(unknown)}: {', '.join(METHODS)}")
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    from shopperlake.core.config import load_config
    from shopperlake.core.session import build_session
    from shopperlake.rec.als import fit_als
    from shopperlake.rec.ease import ease_weights, gram_matrix, score_ease
    from shopperlake.rec.itemcf import item_similarity, recommend_itemcf
    from shopperlake.rec.params import RecParams
    from shopperlake.rec.twotower import prepare_twotower, recommend_twotower

    cfg = load_config(args.env)
    params = RecParams.from_config(cfg.section("recommender"))
    spark = build_session(cfg, "shopperlake-bench-recs")
    spark.sparkContext.setLogLevel("ERROR")
    inter = interactions_frame(spark, args.users, args.items, args.per_user, args.seed).cache()
    n_inter = inter.count()
    conf = spark.conf
    machine = (
        f"{os.cpu_count()} CPU cores, Spark {spark.version} master={spark.sparkContext.master}, "
        f"defaultParallelism={spark.sparkContext.defaultParallelism}, "
        f"shuffle.partitions={conf.get('spark.sql.shuffle.partitions')}, "
        f"AQE={conf.get('spark.sql.adaptive.enabled')}, "
        f"driver memory={conf.get('spark.driver.memory', 'default')}"
    )
    print(f"{n_inter} interactions, {args.users} users x {args.items} items", flush=True)
    print(f"machine: {machine}", flush=True)

    def itemcf(run: Run) -> None:
        cf = params.itemcf
        sims = item_similarity(
            inter, str(cf["similarity"]), int(cf["min_support"]), int(cf["neighbours"]),
            int(cf["max_items_per_user"]),
        ).cache()  # fmt: skip
        run.timed("similarity", sims.count)
        run.timed("top-10 all users", lambda: materialise(recommend_itemcf(inter, sims, 10)))
        sims.unpersist()

    def ease(run: Run) -> None:
        e = params.ease
        gram = run.timed("Gram", lambda: gram_matrix(spark, inter, int(e["max_items"])))
        if gram is None:
            raise SystemExit(f"EASE skipped: more than {e['max_items']} items")
        g = gram.matrix
        b = run.timed("solve", lambda: ease_weights(g, float(e["lambdas"][-1])))
        scored = score_ease(spark, inter, gram.item_ids, b, 10, int(e["block_items"]))
        run.timed("top-10 all users", lambda: materialise(scored))

    def als(run: Run) -> None:
        model, users, items = run.timed("fit", lambda: fit_als(spark, inter, params.als))
        recs = model.recommendForAllUsers(10)
        run.timed("recommendForAllUsers(10)", lambda: materialise(recs))
        users.unpersist()
        items.unpersist()

    def twotower(run: Run) -> None:
        # Retrieval cost does not depend on the weights: the towers are built with their
        # vocabularies and user features but not trained (training 2M pairs is its own job).
        model = run.timed(
            "prepare",  # vocabularies and user features
            lambda: prepare_twotower(spark, inter, None, None, params.twotower),
        )
        users = inter.select("user_id").distinct()
        recs = recommend_twotower(spark, model, users, 10)
        run.timed("top-10 all users", lambda: materialise(recs))
        model.profiles.unpersist()

    def sasrec_retrieval(run: Run) -> None:
        # Like the two-tower: untrained weights of the configured shape (the cost does not
        # depend on them); each user's items in one order, as views; the score job's
        # executor function (encoder at the last position, scores over every item, top 10).
        from pyspark.sql import functions as F

        from shopperlake.seqmodel import sasrec
        from shopperlake.seqmodel.build import FUNNEL
        from shopperlake.seqmodel.retrieval import SCORED, next_item_scorer

        p = sasrec.SasRecParams.from_dict(dict(cfg.get("sequences.sasrec") or {}))
        ids = sorted(r.item_id for r in inter.select("item_id").distinct().collect())
        vocab = sasrec.Vocab(len(ids), len(FUNNEL), np.zeros(len(ids) + 1, np.int32))
        weights = sasrec.build_model(vocab, p).get_weights()
        users = (
            inter.groupBy("user_id")
            .agg(F.sort_array(F.collect_list("item_id")).alias("item_ids"))
            .withColumn("event_types", F.expr("transform(item_ids, x -> 'view')"))
            .cache()
        )
        run.timed("histories", users.count)
        shipped = spark.sparkContext.broadcast((vocab, p, weights, ids))
        recs = users.mapInPandas(next_item_scorer(shipped, f"bench-{time.time_ns()}", 10, False),
                                 SCORED)  # fmt: skip
        run.timed("top-10 all users", lambda: materialise(recs))
        shipped.unpersist()
        users.unpersist()

    bodies: dict[str, Callable[[Run], None]] = {
        "itemcf": itemcf, "ease": ease, "als": als, "twotower": twotower,
        "sasrec": sasrec_retrieval,
    }  # fmt: skip
    results: dict[str, list[Run]] = {}
    for rep in range(args.repeat):
        for name in methods:
            run = Run()
            try:
                bodies[name](run)
            except NotImplementedError as skipped:
                print(f"{name}: skipped ({skipped})", flush=True)
                continue
            results.setdefault(name, []).append(run)
            parts = ", ".join(f"{k} {v:.1f} s" for k, v in run.parts.items())
            print(f"[{rep + 1}/{args.repeat}] {name:<9}{run.total:>8.1f} s  ({parts})", flush=True)

    als_runs = results.get("als", [])
    ref_top = min((r.parts["recommendForAllUsers(10)"] for r in als_runs), default=float("nan"))
    ref_all = min((r.total for r in als_runs), default=float("nan"))
    print()
    print(f"Top-10 for all {args.users:,} users x {args.items:,} items ({n_inter:,} interactions)")
    print(f"machine: {machine}; best of {args.repeat} (median in brackets)")
    print("speed-up: the ALS figure of the same kind / this one (> 1: faster than ALS);")
    print("  top-10 rows against recommendForAllUsers(10), end-to-end rows against ALS fit +")
    print("  recommendForAllUsers(10)")
    print(f"{'method':<40}{'wall s':>9}{'median':>9}{'speed-up':>10}")
    rows: list[tuple[str, list[float], float | None]] = []
    for name in methods:
        runs = results.get(name)
        if not runs:
            continue
        if name == "als":
            rows.append(("ALS fit", [r.parts["fit"] for r in runs], None))
            rows.append(
                (
                    "ALS recommendForAllUsers(10) [reference]",
                    [r.parts["recommendForAllUsers(10)"] for r in runs],
                    ref_top,
                )
            )
            rows.append(("ALS end to end (fit + top-10)", [r.total for r in runs], ref_all))
            continue  # fmt: skip
        label = {"itemcf": "item-CF", "ease": "EASE", "twotower": "two-tower",
                 "sasrec": "SASRec"}[name]  # fmt: skip
        for part in runs[0].parts:
            ref = ref_top if part == "top-10 all users" else None
            rows.append((f"  {label}: {part}", [r.parts[part] for r in runs], ref))
        if name not in ("twotower", "sasrec"):  # retrieval only (training not timed here)
            rows.append((f"{label} end to end (fit + top-10)", [r.total for r in runs], ref_all))
    for label, values, ref in rows:
        best, median = min(values), statistics.median(values)
        ratio = f"{ref / best:.2f}x" if ref is not None else ""
        print(f"{label:<40}{best:>9.1f}{median:>9.1f}{ratio:>10}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
