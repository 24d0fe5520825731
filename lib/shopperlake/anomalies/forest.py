"""Isolation Forest over the user features, from LinkedIn's maintained Spark library.

``com.linkedin.isolation-forest:isolation-forest_3.5.0_2.12`` (Maven Central; ``make setup``
puts the jar in ``jars/``) trains and scores on the executors. It sees every feature of
:data:`shopperlake.anomalies.users.FEATURES` as ``log1p`` (counts and rates are heavy-tailed)
and returns one outlier score per user in [0, 1]: not an anomaly type, so it is measured as a
detector of each planted type and of "any abuse" next to the rules and peer z-scores
(``detect_anomalies --truth``; README "Anomalies"), and kept as an alerting detector only
where it measures better.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.ml.feature import VectorAssembler
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shopperlake.core.config import Config
from shopperlake.core.errors import ConfigError, InputError

ESTIMATOR = "com.linkedin.relevance.isolationforest.IsolationForest"


@dataclass(frozen=True)
class ForestSettings:
    trees: int = 100
    max_samples: float = 256.0  # points per tree (Liu et al.: 256 is enough)
    seed: int = 1

    @classmethod
    def from_config(cls, cfg: Config) -> ForestSettings:
        block = cfg.get("anomalies.forest") or {}
        unknown = set(block) - {"trees", "max_samples", "seed"}
        if unknown:
            raise ConfigError(f"anomalies.forest: unknown key(s) {', '.join(sorted(unknown))}")
        out = cls(
            trees=int(block.get("trees", cls.trees)),
            max_samples=float(block.get("max_samples", cls.max_samples)),
            seed=int(block.get("seed", cls.seed)),
        )
        if out.trees < 1 or out.max_samples < 2:
            raise ConfigError("anomalies.forest: trees must be >= 1 and max_samples >= 2")
        return out


def forest_scores(features: DataFrame, columns: Sequence[str], s: ForestSettings) -> DataFrame:
    """``user_id, forest_score`` (higher: easier to isolate) for every row of ``features``."""
    spark = features.sparkSession
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    package = jvm.com.linkedin.relevance.isolationforest
    try:
        estimator = package.IsolationForest()
    except TypeError:  # py4j hands back a JavaPackage when the class is not on the classpath
        raise InputError(
            f"{ESTIMATOR} is not on the classpath: run `make setup` (it fetches "
            "isolation-forest_3.5.0_2.12 into jars/), or add the package on a cluster"
        ) from None
    logged = features.select(
        "user_id", *[F.log1p(F.greatest(F.col(c).cast("double"), F.lit(0.0))).alias(c)
                     for c in columns]
    )  # fmt: skip
    assembled = VectorAssembler(inputCols=list(columns), outputCol="forest_features").transform(
        logged
    )
    estimator = (
        estimator.setNumEstimators(s.trees)
        .setBootstrap(False)
        .setMaxSamples(s.max_samples)
        .setMaxFeatures(1.0)
        .setFeaturesCol("forest_features")
        .setPredictionCol("forest_label")
        .setScoreCol("forest_score")
        .setContamination(0.0)
        .setRandomSeed(s.seed)
    )
    model = estimator.fit(assembled._jdf)
    scored = DataFrame(model.transform(assembled._jdf), spark)
    return scored.select("user_id", F.col("forest_score").cast("double").alias("forest_score"))
