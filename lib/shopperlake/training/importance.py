"""Permutation feature importance computed on Spark: the drop in ROC-AUC when one feature's
values are shuffled across users, all features scored in one distributed pass."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def spark_auc(scored: DataFrame, group: str) -> DataFrame:
    """ROC-AUC per ``group`` from ``label``/``score`` (Mann-Whitney with average tie ranks)."""
    by_score = Window.partitionBy(group).orderBy("score")
    ties = Window.partitionBy(group, "score")
    ranked = scored.withColumn(
        "rnk", F.rank().over(by_score) + (F.count(F.lit(1)).over(ties) - 1) / 2.0
    )
    agg = ranked.groupBy(group).agg(
        F.sum(F.when(F.col("label") == 1, F.col("rnk"))).alias("rank_sum"),
        F.sum((F.col("label") == 1).cast("long")).alias("pos"),
        F.sum((F.col("label") == 0).cast("long")).alias("neg"),
    )
    auc = (F.col("rank_sum") - F.col("pos") * (F.col("pos") + 1) / 2) / (
        F.col("pos") * F.col("neg")
    )
    return agg.select(group, auc.alias("auc"))


def permutation_importance(
    test: DataFrame,
    n_features: int,
    names: list[str],
    score: Callable[[DataFrame], DataFrame],
    seed: int = 11,
    max_rows: int = 20_000,
) -> dict[str, float]:
    """``{feature: AUC(original) - AUC(feature permuted)}`` on ``test`` (features, label).

    Each feature gets its own random cyclic shift of the rows (a permutation without fixed
    points), so every variant is one exploded row and one join: a single distributed pass
    scores the original and all permuted copies, and AUCs are computed per feature on Spark.
    At most ``max_rows`` test rows (a seeded random subset) are used.
    """
    base = test.select("features", "label")
    if base.count() > max_rows:
        # An exact seeded sample: ``models.<name>.importance_rows`` bounds the rows scored
        # (a Bernoulli ``sample(fraction)`` may overshoot it).
        base = base.orderBy(F.rand(seed)).limit(max_rows)
    base = base.withColumn(
        "pos", F.row_number().over(Window.orderBy(F.monotonically_increasing_id())) - 1
    ).cache()
    n = base.count()
    rng = np.random.default_rng(seed)
    shifts = [int(x) for x in rng.integers(1, max(n, 2), size=n_features)]
    shift = F.array(*[F.lit(x) for x in shifts])
    exploded = base.select(
        "pos",
        "features",
        "label",
        F.explode(F.sequence(F.lit(0), F.lit(n_features - 1))).alias("j"),
    ).withColumn("donor", F.pmod(F.col("pos") + shift[F.col("j")], F.lit(n)))
    donors = base.select(F.col("pos").alias("donor"), F.col("features").alias("dfeat"))
    permuted = exploded.join(donors, "donor").select(
        F.col("j").alias("feature"),
        F.transform(
            "features",
            lambda x, i: F.when(i == F.col("j"), F.col("dfeat")[F.col("j")]).otherwise(x),
        ).alias("features"),
        "label",
    )
    union = base.select(F.lit(-1).alias("feature"), "features", "label").unionByName(permuted)
    aucs = {r["feature"]: float(r["auc"]) for r in spark_auc(score(union), "feature").collect()}
    base.unpersist()
    ref = aucs[-1]
    return {names[j]: ref - aucs[j] for j in range(n_features)}
