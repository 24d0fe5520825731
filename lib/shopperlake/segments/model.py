"""User segments from one gold.user_profiles snapshot.

- RFM: quintile scores 1-5 (``sql/rfm_scores.sql``) and the usual named segments, by ordered
  rules over the scores from config (``segments.rfm_map``, first match wins).
- Learned clusters: Spark MLlib KMeans on standardised profile features from config, k picked
  by silhouette (or fixed), seeded. Cluster ids are stable from run to run: the new centroids
  are matched to the previous run's (Hungarian assignment on standardised distance), and each
  cluster is described by its most distinctive features.
- Summary: size, share and mean/median of the key features per segment and per cluster.

Transforms here are pure; :func:`fit_clusters` runs MLlib fits (actions) and returns plain
numbers plus the assignment frame.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark import StorageLevel
from pyspark.ml.clustering import KMeans
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.feature import StandardScaler, VectorAssembler
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from scipy.optimize import linear_sum_assignment

from shopperlake.core.errors import ConfigError
from shopperlake.core.sqlfiles import run_sql

log = logging.getLogger(__name__)

RFM = "rfm"
CLUSTER = "cluster"
# Key features of the summary: (profile column, summary column stem).
SUMMARY_FEATURES = (
    "recency_days", "frequency", "monetary_total", "avg_order_value", "tenure_days",
    "days_since_last_event",
)  # fmt: skip
# What the usual RFM segment names mean (used as the summary's description).
RFM_DESCRIPTIONS = {
    "Champions": "bought recently, buy often and spend the most",
    "Loyal Customers": "buy regularly and spend well; responsive to promotions",
    "Potential Loyalists": "recent customers with average frequency and spend",
    "New Customers": "bought very recently, but only once or for little",
    "Promising": "recent shoppers who have not bought much yet",
    "Need Attention": "above-average recency, frequency and spend, but slipping",
    "About to Sleep": "below-average recency and frequency: lose them without a nudge",
    "Can't Lose Them": "used to buy often and the most, but not for a long time",
    "At Risk": "spent well and bought often, but long ago",
    "Hibernating": "last purchase long ago, few orders, low spend",
    "Lost": "lowest recency, frequency and spend",
}
_Z_FLOOR = 0.25  # a centroid within 0.25 sd of the mean on a feature is "average" there


# -- RFM -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RfmRule:
    """A named RFM segment: a boolean Spark SQL rule over r/f/m/fm scores."""

    name: str
    condition: str


def parse_rfm_map(rfm_map: Mapping[str, Any]) -> list[RfmRule]:
    """Config ``segments.rfm_map`` (segment name -> rule, in order; null drops one)."""
    rules = []
    for name, condition in rfm_map.items():
        if condition is None:
            continue
        if not isinstance(condition, str) or not condition.strip():
            raise ConfigError(f"segments.rfm_map.{name} must be a Spark SQL expression string")
        rules.append(RfmRule(str(name), condition))
    if not rules:
        raise ConfigError("segments.rfm_map is empty: name at least one RFM segment")
    return rules


def rfm_scores(profiles: DataFrame) -> DataFrame:
    """Purchasers' quintile scores: user_id, r_score, f_score, m_score, fm_score, rfm_code."""
    scores = run_sql(profiles.sparkSession, "rfm_scores", profiles=profiles)
    f, m = F.col("f_score"), F.col("m_score")
    return scores.select(
        "user_id",
        F.col("r_score").cast("int").alias("r_score"),
        f.cast("int").alias("f_score"),
        m.cast("int").alias("m_score"),
        F.round((f + m) / 2.0).cast("int").alias("fm_score"),
        F.concat_ws("", "r_score", "f_score", "m_score").alias("rfm_code"),
    )


def name_rfm_segments(
    profiles: DataFrame,
    scores: DataFrame,
    rules: Sequence[RfmRule],
    no_purchase: str,
    other: str,
) -> DataFrame:
    """Every user of ``profiles`` with their scores (null without purchases) and segment."""
    users = profiles.select("user_id").join(scores, on="user_id", how="left")
    segment: Column = F.when(F.col("r_score").isNull(), F.lit(no_purchase))
    for rule in rules:
        try:
            condition = F.expr(rule.condition)
            users.select(condition)  # analysis fails here, naming the rule
        except Exception as exc:
            raise ConfigError(
                f"segments.rfm_map.{rule.name}: invalid rule '{rule.condition}': {exc}"
            ) from exc
        segment = segment.when(condition, F.lit(rule.name))
    return users.withColumn("rfm_segment", segment.otherwise(F.lit(other)))


# -- clusters ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KMeansParams:
    """Features (Spark SQL ``expr [AS name]``), k or its silhouette range, seed, sizes."""

    features: tuple[str, ...]
    k: int | None = None
    k_min: int = 2
    k_max: int = 8
    seed: int = 42
    max_iter: int = 40
    sample_rows: int = 20_000
    describe_top: int = 3

    def __post_init__(self) -> None:
        if not self.features:
            raise ConfigError("segments.kmeans.features is empty")
        if self.k is not None and self.k < 2:
            raise ConfigError(f"segments.kmeans.k must be >= 2 (or null), got {self.k}")
        if not 2 <= self.k_min <= self.k_max:
            raise ConfigError(
                f"segments.kmeans: need 2 <= k_min <= k_max, got {self.k_min}..{self.k_max}"
            )
        if self.sample_rows < 10 or self.max_iter < 1 or self.describe_top < 1:
            raise ConfigError("segments.kmeans: sample_rows >= 10, max_iter, describe_top >= 1")

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> KMeansParams:
        features = section.get("features") or []
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise ConfigError("segments.kmeans.features must be a list of expressions")
        k = section.get("k")
        return cls(
            features=tuple(features),
            k=None if k is None else int(k),
            k_min=int(section.get("k_min", 2)),
            k_max=int(section.get("k_max", 8)),
            seed=int(section.get("seed", 42)),
            max_iter=int(section.get("max_iter", 40)),
            sample_rows=int(section.get("sample_rows", 20_000)),
            describe_top=int(section.get("describe_top", 3)),
        )


def feature_frame(profiles: DataFrame, features: Sequence[str]) -> DataFrame:
    """user_id plus one double column per feature expression (nulls as 0), sorted by user."""
    try:
        frame = profiles.selectExpr("user_id", *features)
    except Exception as exc:
        raise ConfigError(f"segments.kmeans.features: invalid expression: {exc}") from exc
    names = frame.columns[1:]
    if len(set(names)) != len(names) or "user_id" in names:
        raise ConfigError(f"segments.kmeans.features: names must be unique, got {names}")
    return frame.select(
        "user_id", *[F.coalesce(F.col(f"`{n}`").cast("double"), F.lit(0.0)).alias(n) for n in names]
    ).orderBy("user_id")


@dataclass
class Clustering:
    """A fitted clustering: centroids in raw feature units (row = model label)."""

    k: int
    features: list[str]
    mean: np.ndarray
    std: np.ndarray
    centroids: np.ndarray
    sizes: list[int]
    silhouette: float | None
    assignments: DataFrame  # user_id, label

    def standardise(self, points: np.ndarray) -> np.ndarray:
        return (points - self.mean) / np.where(self.std > 0, self.std, 1.0)

    @property
    def centroids_z(self) -> np.ndarray:
        return self.standardise(self.centroids)


def fit_clusters(features: DataFrame, params: KMeansParams) -> Clustering:
    """Standardise, pick k by silhouette on a sample (or use the fixed k), fit on everyone."""
    names = features.columns[1:]
    vectors = VectorAssembler(inputCols=names, outputCol="raw").transform(features)
    scaler = StandardScaler(inputCol="raw", outputCol="features", withMean=True, withStd=True)
    scaler_model = scaler.fit(vectors)
    scaled = scaler_model.transform(vectors).select("user_id", "features")
    scaled = scaled.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        n = scaled.count()
        mean = np.array(scaler_model.mean.toArray())
        std = np.array(scaler_model.std.toArray())
        candidates = [params.k] if params.k else list(range(params.k_min, params.k_max + 1))
        candidates = [k for k in candidates if k < n]
        if not candidates:
            log.warning("%d users: too few to cluster, all in one cluster", n)
            return _one_cluster(scaled.select("user_id"), list(names), mean, std, n)
        best_k, best_score = candidates[0], None
        if len(candidates) > 1:
            best_k, best_score = _pick_k(scaled, n, candidates, params)
        model = KMeans(
            k=best_k, seed=params.seed, maxIter=params.max_iter, featuresCol="features"
        ).fit(scaled)
        assigned = model.transform(scaled).select(
            "user_id", F.col("prediction").cast("int").alias("label")
        )
        label_sizes = {
            int(r["label"]): int(r["count"]) for r in assigned.groupBy("label").count().collect()
        }
        if best_score is None:
            best_score = _silhouette(model.transform(scaled))
    finally:
        scaled.unpersist()
    centers = np.array([np.asarray(c) for c in model.clusterCenters()])
    safe_std = np.where(std > 0, std, 1.0)
    return Clustering(
        k=len(centers),  # KMeans returns fewer centres when there are fewer distinct points
        features=list(names),
        mean=mean,
        std=std,
        centroids=centers * safe_std + mean,
        sizes=[label_sizes.get(i, 0) for i in range(len(centers))],
        silhouette=best_score,
        assignments=assigned,
    )


def _one_cluster(
    users: DataFrame, names: list[str], mean: np.ndarray, std: np.ndarray, n: int
) -> Clustering:
    return Clustering(
        k=1,
        features=names,
        mean=mean,
        std=std,
        centroids=mean.reshape(1, -1),
        sizes=[n],
        silhouette=None,
        assignments=users.withColumn("label", F.lit(0)),
    )


def _silhouette(predictions: DataFrame) -> float | None:
    """Silhouette of ``predictions`` (features, prediction); None when they hold fewer than
    two clusters (KMeans collapses to one on identical points), where it is undefined. Any
    other failure of the evaluator (a wrong features column, ...) propagates."""
    clusters = predictions.select("prediction").distinct().limit(2).count()
    if clusters < 2:
        log.info("one cluster only: silhouette undefined")
        return None
    return float(ClusteringEvaluator(featuresCol="features").evaluate(predictions))


def _pick_k(
    scaled: DataFrame, n: int, candidates: list[int], params: KMeansParams
) -> tuple[int, float | None]:
    sample = scaled
    if n > params.sample_rows:
        sample = scaled.sample(fraction=params.sample_rows / n, seed=params.seed)
    sample = sample.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        scores: dict[int, float] = {}
        for k in candidates:
            model = KMeans(k=k, seed=params.seed, maxIter=params.max_iter).fit(sample)
            score = _silhouette(model.transform(sample))
            log.info("k=%d: silhouette %s", k, score)
            if score is not None:
                scores[k] = score
    finally:
        sample.unpersist()
    if not scores:
        return candidates[0], None
    best = max(scores, key=lambda k: (round(scores[k], 6), -k))
    return best, scores[best]


def match_cluster_ids(
    new_z: np.ndarray,
    sizes: Sequence[int],
    previous_ids: Sequence[int] = (),
    previous_z: np.ndarray | None = None,
) -> list[int]:
    """Stable ids for the new clusters (rows of ``new_z``, standardised centroids).

    With previous centroids (standardised the same way), clusters are paired by minimum total
    Euclidean distance (Hungarian) and keep the paired id; the rest get fresh ids above every
    previous id, biggest cluster first. Without, ids are 0.. by decreasing size.
    """
    k = len(new_z)
    ids: list[int | None] = [None] * k
    if previous_z is not None and len(previous_ids):
        cost = np.linalg.norm(new_z[:, None, :] - previous_z[None, :, :], axis=2)
        rows, cols = linear_sum_assignment(cost)
        for r, c in zip(rows, cols, strict=True):
            ids[int(r)] = int(previous_ids[int(c)])
    fresh = max(previous_ids, default=-1) + 1
    order = sorted(range(k), key=lambda i: (-sizes[i], tuple(np.round(new_z[i], 9))))
    for i in order:
        if ids[i] is None:
            ids[i] = fresh
            fresh += 1
    return [int(i) for i in ids if i is not None]


def describe_cluster(z: Sequence[float], names: Sequence[str], top: int = 3) -> str:
    """The ``top`` most distinctive features of a standardised centroid, in words."""
    ranked = sorted(range(len(names)), key=lambda i: (-abs(z[i]), i))
    parts = [
        f"{'high' if z[i] > 0 else 'low'} {names[i]} ({z[i]:+.1f} sd)"
        for i in ranked[:top]
        if abs(z[i]) >= _Z_FLOOR
    ]
    return ", ".join(parts) if parts else "close to average on every feature"


# -- summary -------------------------------------------------------------------------------------


def _mean_median(column: str, mean_name: str, median_name: str) -> list[Column]:
    """Mean and exact median (6 decimals, so re-runs give identical values)."""
    return [
        F.round(F.avg(column), 6).alias(mean_name),
        F.round(F.percentile(F.col(column), 0.5), 6).alias(median_name),
    ]


def segment_summary(
    segments: DataFrame,
    profiles: DataFrame,
    features: DataFrame | None,
    as_of: dt.date,
    rfm_descriptions: Mapping[str, str] = RFM_DESCRIPTIONS,
) -> DataFrame:
    """Per RFM segment and per cluster: users, share, mean/median of the key profile columns
    and (maps) of the cluster features.

    ``segments``: user_id, rfm_segment, cluster_id, cluster_description;
    ``features``: user_id plus one column per cluster feature (or None);
    ``rfm_descriptions``: RFM segment name -> description.
    """
    joined = segments.join(profiles.select("user_id", *SUMMARY_FEATURES), on="user_id")
    names: list[str] = []
    if features is not None:
        names = features.columns[1:]
        renamed = features.select("user_id", *[F.col(f"`{n}`").alias(f"f__{n}") for n in names])
        joined = joined.join(renamed, on="user_id", how="left")
    stats = [F.count(F.lit(1)).alias("users")]
    for c in SUMMARY_FEATURES:
        stats += _mean_median(c, f"mean_{c}", f"median_{c}")
    for i, n in enumerate(names):
        stats += _mean_median(f"f__{n}", f"_fmean{i}", f"_fmed{i}")
    descriptions = F.create_map(
        *[x for name, text in rfm_descriptions.items() for x in (F.lit(name), F.lit(text))]
    )
    rfm = (
        joined.groupBy(F.col("rfm_segment").alias("segment"))
        .agg(*stats)
        .select(
            F.lit(RFM).alias("kind"),
            "segment",
            F.lit(None).cast("int").alias("cluster_id"),
            descriptions[F.col("segment")].alias("description"),
            "*",
        )
    )
    clusters = (
        joined.where(F.col("cluster_id").isNotNull())
        .groupBy("cluster_id")
        .agg(F.first("cluster_description").alias("description"), *stats)
        .select(
            F.lit(CLUSTER).alias("kind"),
            F.col("cluster_id").cast("string").alias("segment"),
            "*",
        )
    )
    columns = [c for c in rfm.columns if c not in {"kind", "segment", "cluster_id", "description"}]
    head = ["kind", "segment", "cluster_id", "description"]
    both = rfm.select(*head, *columns).unionByName(clusters.select(*head, *columns))
    population = F.sum("users").over(Window.partitionBy("kind"))
    feature_map: dict[str, Column] = {}
    for label, stem in (("feature_means", "_fmean"), ("feature_medians", "_fmed")):
        if names:
            feature_map[label] = F.create_map(
                *[x for i, n in enumerate(names) for x in (F.lit(n), F.col(f"{stem}{i}"))]
            )
        else:
            feature_map[label] = F.lit(None).cast("map<string,double>")
    return both.withColumns(
        {
            "share": F.round(F.col("users") / population, 6),
            **feature_map,
            "as_of_date": F.lit(as_of),
        }
    ).drop(*[c for c in both.columns if c.startswith("_f")])


# -- rows for gold.segment_centroids -------------------------------------------------------------


def centroid_rows(
    clustering: Clustering,
    ids: Sequence[int],
    descriptions: Sequence[str],
    as_of: dt.date,
    matched: dt.date | None,
) -> list[dict[str, Any]]:
    """One plain row per cluster for ``gold.segment_centroids``."""
    z = clustering.centroids_z
    return [
        {
            "cluster_id": int(ids[i]),
            "k": clustering.k,
            "features": list(clustering.features),
            "centroid": [round(float(v), 9) for v in clustering.centroids[i]],
            "centroid_z": [round(float(v), 9) for v in z[i]],
            "users": int(clustering.sizes[i]),
            "description": descriptions[i],
            "silhouette": clustering.silhouette,
            "matched_as_of_date": matched,
            "as_of_date": as_of,
        }
        for i in range(clustering.k)
    ]


def label_frame(spark: SparkSession, ids: Sequence[int], descriptions: Sequence[str]) -> DataFrame:
    """(label, cluster_id, cluster_description) for joining to the assignments."""
    return spark.createDataFrame(
        [(i, int(ids[i]), descriptions[i]) for i in range(len(ids))],
        "label int, cluster_id int, cluster_description string",
    )
