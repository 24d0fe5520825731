"""RFM scores and segments worked out by hand, KMeans k selection and stable cluster ids,
descriptions, the segment summary, and the build_segments job (stability, idempotency)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np
import pytest
from pyspark.errors import IllegalArgumentException
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StructField, StructType
from pyspark.testing import assertDataFrameEqual

from shopperlake.core.config import load_config
from shopperlake.core.lake import Lake
from shopperlake.core.schemas import USER_PROFILES
from shopperlake.segments.job import main as build_segments_job
from shopperlake.segments.model import (
    RFM_DESCRIPTIONS,
    Clustering,
    KMeansParams,
    describe_cluster,
    fit_clusters,
    match_cluster_ids,
    name_rfm_segments,
    parse_rfm_map,
    rfm_scores,
    segment_summary,
)
from shopperlake.segments.model import _silhouette as silhouette
from tests.conftest import job_args

D1 = dt.date(2024, 3, 31)
D2 = dt.date(2024, 4, 7)


def default_rules() -> list[Any]:
    return parse_rfm_map(load_config("local").get("segments.rfm_map"))


def test_rfm_scores_and_segments_by_hand(spark: SparkSession) -> None:
    profiles = spark.createDataFrame(
        [
            ("a", 1, 10, 500.0),
            ("b", 5, 4, 200.0),
            ("c", 10, 2, 100.0),
            ("d", 30, 1, 50.0),
            ("e", 90, 1, 20.0),
            ("z", None, 0, 0.0),  # no purchase: no scores
        ],
        "user_id string, recency_days int, frequency long, monetary_total double",
    )
    # Cut points (exact percentiles, linear interpolation at 0.8, 1.6, 2.4, 3.2 of 0..4):
    #   recency  [1, 5, 10, 30, 90]     -> 4.2, 8, 18, 42   (score 1 + cuts above the value)
    #   frequency [1, 1, 2, 4, 10]      -> 1, 1.6, 2.8, 5.2 (score 1 + cuts below the value)
    #   monetary [20, 50, 100, 200, 500] -> 44, 80, 140, 260
    # fm = round((f + m) / 2): d (1 + 2) / 2 = 1.5 -> 2.
    got = name_rfm_segments(
        profiles, rfm_scores(profiles), default_rules(), "No Purchases", "Other"
    ).select("user_id", "r_score", "f_score", "m_score", "fm_score", "rfm_code", "rfm_segment")
    expected = [
        Row("a", 5, 5, 5, 5, "555", "Champions"),
        Row("b", 4, 4, 4, 4, "444", "Loyal Customers"),
        Row("c", 3, 3, 3, 3, "333", "Need Attention"),
        Row("d", 2, 1, 2, 2, "212", "Hibernating"),
        Row("e", 1, 1, 1, 1, "111", "Lost"),
        Row("z", None, None, None, None, None, "No Purchases"),
    ]
    assertDataFrameEqual(got, expected)


def test_default_rfm_map_names_every_score_triple(spark: SparkSession) -> None:
    triples = spark.createDataFrame(
        [
            (f"{r}{f}{m}", r, f, m, int((f + m) / 2 + 0.5))
            for r in range(1, 6)
            for f in range(1, 6)
            for m in range(1, 6)
        ],
        "user_id string, r_score int, f_score int, m_score int, fm_score int",
    )
    named = name_rfm_segments(triples.select("user_id"), triples, default_rules(), "-", "Other")
    names = {r["rfm_segment"] for r in named.select("rfm_segment").distinct().collect()}
    assert names == set(RFM_DESCRIPTIONS)  # all eleven, never "Other"
    spot = named.where(F.col("user_id").isin("555", "511", "411", "155", "244", "111", "333"))
    assertDataFrameEqual(
        spot.select("user_id", "rfm_segment"),
        [
            Row("555", "Champions"),
            Row("511", "New Customers"),
            Row("411", "Promising"),
            Row("155", "Can't Lose Them"),
            Row("244", "At Risk"),
            Row("111", "Lost"),
            Row("333", "Need Attention"),
        ],
    )


def test_match_cluster_ids_hungarian_and_fresh_ids() -> None:
    previous = np.array([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    previous_ids = [0, 1, 2]
    # the same three clusters found in another order, slightly moved
    new = np.array([[-4.8, 5.1], [0.2, -0.1], [5.1, 4.7]])
    assert match_cluster_ids(new, [5, 9, 4], previous_ids, previous) == [2, 0, 1]
    # a fourth cluster appears: it gets a fresh id after the highest previous one
    grown = np.vstack([new, [[0.0, 10.0]]])
    assert match_cluster_ids(grown, [5, 9, 4, 3], previous_ids, previous) == [2, 0, 1, 3]
    # two clusters left: each keeps the id of its nearest previous cluster
    assert match_cluster_ids(new[:2], [5, 9], previous_ids, previous) == [2, 0]
    # no previous run: ids by decreasing size
    assert match_cluster_ids(new, [5, 9, 4]) == [1, 0, 2]


def test_describe_cluster_names_the_most_distinctive_features() -> None:
    names = ["recency_days", "frequency", "monetary_total", "tenure_days"]
    text = describe_cluster([-1.26, 2.04, 1.5, 0.1], names, top=3)
    assert (
        text
        == "high frequency (+2.0 sd), high monetary_total (+1.5 sd), low recency_days (-1.3 sd)"
    )
    assert describe_cluster([0.1, -0.2, 0.0, 0.05], names) == "close to average on every feature"


def blobs(spark: SparkSession, shift: float = 0.0, extra: int = 0, per_blob: int = 8) -> DataFrame:
    """Three well separated groups of users in (days_since_last_event, frequency)."""
    centres = {"x": (2.0, 10.0), "y": (150.0, 2.0), "z": (60.0, 6.0)}
    rows = []
    for name, (a, b) in centres.items():
        for i in range(per_blob + extra):
            jitter = (i % 4 - 1.5) * 0.8
            rows.append((f"{name}{i:02d}", a + shift + jitter, b + jitter / 4))
    return spark.createDataFrame(rows, "user_id string, days double, freq double")


def test_kmeans_picks_k_by_silhouette_and_ids_survive_a_reseeded_rerun(
    spark: SparkSession,
) -> None:
    params = KMeansParams(features=("days", "freq"), k_min=2, k_max=4, seed=1, max_iter=20)
    first = fit_clusters(blobs(spark), params)
    assert first.k == 3
    assert first.silhouette is not None and first.silhouette > 0.9
    first_ids = match_cluster_ids(first.centroids_z, first.sizes)

    second = fit_clusters(blobs(spark, shift=3.0, extra=2), dataclasses.replace(params, seed=7))
    second_ids = match_cluster_ids(
        second.centroids_z, second.sizes, first_ids, second.standardise(first.centroids)
    )

    def ids_by_group(clustering: Clustering, ids: list[int]) -> dict[str, set[int]]:
        groups: dict[str, set[int]] = {}
        for row in clustering.assignments.collect():
            groups.setdefault(row["user_id"][0], set()).add(ids[row["label"]])
        return groups

    before, after = ids_by_group(first, first_ids), ids_by_group(second, second_ids)
    assert before == after
    assert sorted(min(v) for v in before.values()) == [0, 1, 2]
    assert all(len(v) == 1 for v in before.values())


def test_silhouette_is_none_for_one_cluster_only_and_other_failures_propagate(
    spark: SparkSession,
) -> None:
    points = [(0.0, 0), (1.0, 0), (10.0, 1), (11.0, 1)]
    two = spark.createDataFrame(
        [(Vectors.dense([x]), p) for x, p in points],
        StructType(
            [StructField("features", VectorUDT()), StructField("prediction", IntegerType())]
        ),
    )
    # Squared Euclidean silhouette (MLlib's default), every point a = 1 (its cluster mate);
    # b = (100 + 121) / 2 for 0 and 11, (81 + 100) / 2 for 1 and 10.
    want = 1.0 - (1.0 / 110.5 + 1.0 / 90.5) / 2.0
    assert silhouette(two) == pytest.approx(want, rel=1e-9)
    one = two.withColumn("prediction", F.lit(0))
    assert silhouette(one) is None  # undefined for a single cluster
    broken = spark.createDataFrame(
        [(str(x), p) for x, p in points], "features string, prediction int"
    )
    with pytest.raises(IllegalArgumentException, match="Column features must be of type"):
        silhouette(broken)


def test_segment_summary_by_hand(spark: SparkSession) -> None:
    segments = spark.createDataFrame(
        [("a", "Champions", 0, "d0"), ("b", "Champions", 0, "d0"),
         ("c", "Champions", 1, "d1"), ("d", "Lost", 1, "d1")],
        "user_id string, rfm_segment string, cluster_id int, cluster_description string",
    )  # fmt: skip
    profiles = spark.createDataFrame(
        [("a", 2, 4, 100.0, 25.0, 50, 1), ("b", 4, 2, 60.0, 30.0, 30, 4),
         ("c", 9, 6, 240.0, 40.0, 100, 9), ("d", None, 0, 0.0, None, 10, 10)],
        "user_id string, recency_days int, frequency long, monetary_total double, "
        "avg_order_value double, tenure_days int, days_since_last_event int",
    )  # fmt: skip
    features = spark.createDataFrame(
        [("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 5.0)], "user_id string, x double"
    )
    got = segment_summary(segments, profiles, features, D1).select(
        "kind", "segment", "cluster_id", "description", "users", "share",
        "mean_recency_days", "median_recency_days", "mean_frequency", "median_frequency",
        "mean_monetary_total", "median_monetary_total", "mean_avg_order_value",
        "median_avg_order_value", "mean_tenure_days", "median_tenure_days",
        "mean_days_since_last_event", "median_days_since_last_event", "feature_means",
        "feature_medians", "as_of_date",
    )  # fmt: skip
    champions, lost = RFM_DESCRIPTIONS["Champions"], RFM_DESCRIPTIONS["Lost"]
    expected = [
        # a, b, c: recency [2, 4, 9], orders [4, 2, 6], spend [100, 60, 240], aov [25, 30, 40],
        # tenure [50, 30, 100], days since last event [1, 4, 9], x [1, 2, 3]
        Row("rfm", "Champions", None, champions, 3, 0.75, 5.0, 4.0, 4.0, 4.0, 133.333333,
            100.0, 31.666667, 30.0, 60.0, 50.0, 4.666667, 4.0, {"x": 2.0}, {"x": 2.0}, D1),
        Row("rfm", "Lost", None, lost, 1, 0.25, None, None, 0.0, 0.0, 0.0, 0.0, None, None,
            10.0, 10.0, 10.0, 10.0, {"x": 5.0}, {"x": 5.0}, D1),
        Row("cluster", "0", 0, "d0", 2, 0.5, 3.0, 3.0, 3.0, 3.0, 80.0, 80.0, 27.5, 27.5,
            40.0, 40.0, 2.5, 2.5, {"x": 1.5}, {"x": 1.5}, D1),
        Row("cluster", "1", 1, "d1", 2, 0.5, 9.0, 9.0, 3.0, 3.0, 120.0, 120.0, 40.0, 40.0,
            55.0, 55.0, 9.5, 9.5, {"x": 4.0}, {"x": 4.0}, D1),
    ]  # fmt: skip
    assertDataFrameEqual(got, expected)


# -- the job ---------------------------------------------------------------------------------------


def profile_snapshot(spark: SparkSession, rows: list[dict[str, Any]], as_of: dt.date) -> DataFrame:
    """A gold.user_profiles snapshot: the given columns, every other column null."""
    full = [
        tuple({**r, "as_of_date": as_of}.get(f.name) for f in USER_PROFILES.fields) for r in rows
    ]
    return spark.createDataFrame(full, USER_PROFILES)


def population(shift: int = 0, extra: int = 0) -> list[dict[str, Any]]:
    """Recent big spenders, lapsed buyers and browsers who never bought."""
    rows = []
    for i in range(8 + extra):
        j = i % 4
        rows.append(
            {
                "user_id": f"vip{i:02d}",
                "days_since_last_event": 2 + j + shift,
                "recency_days": 2 + j + shift,
                "frequency": 9 + j,
                "monetary_total": 480.0 + 10 * j,
            }
        )
        rows.append(
            {
                "user_id": f"lapsed{i:02d}",
                "days_since_last_event": 150 + j + shift,
                "recency_days": 150 + j + shift,
                "frequency": 2,
                "monetary_total": 70.0 + 5 * j,
            }
        )
        rows.append(
            {
                "user_id": f"browser{i:02d}",
                "days_since_last_event": 5 + j,
                "recency_days": None,
                "frequency": 0,
                "monetary_total": 0.0,
            }
        )
    return rows  # fmt: skip


SEGMENT_SETS = (
    "--set", "segments.kmeans.features=[days_since_last_event, frequency, monetary_total]",
    "--set", "segments.kmeans.k=3",
    "--set", "segments.kmeans.max_iter=10",
)  # fmt: skip


def run_segments(lake_root: str, as_of: dt.date, *extra: str) -> int:
    return build_segments_job(
        job_args(lake_root, "--as-of", as_of.isoformat(), *SEGMENT_SETS, *extra)
    )


def ids_by_user(lake: Lake, as_of: dt.date) -> dict[str, int]:
    rows = lake.read("gold.user_segments").where(F.col("as_of_date") == F.lit(as_of)).collect()
    return {r["user_id"]: r["cluster_id"] for r in rows}


def test_build_segments_stable_ids_and_idempotent(
    spark: SparkSession, lake: Lake, lake_root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lake.overwrite_where(
        "gold.user_profiles", profile_snapshot(spark, population(), D1), {"as_of_date": D1}
    )
    assert run_segments(lake_root, D1) == 0
    printed = capsys.readouterr().out
    assert "Segments as of 2024-03-31" in printed and "cluster 0" in printed

    # a week later: everyone a bit older, six new users, and another seed for KMeans
    lake.overwrite_where(
        "gold.user_profiles",
        profile_snapshot(spark, population(shift=7, extra=2), D2),
        {"as_of_date": D2},
    )
    assert run_segments(lake_root, D2, "--set", "segments.kmeans.seed=7") == 0
    first, second = ids_by_user(lake, D1), ids_by_user(lake, D2)
    assert len(set(first.values())) == 3
    assert {u: second[u] for u in first} == first
    centroids = lake.read("gold.segment_centroids").where(F.col("as_of_date") == F.lit(D2))
    assert {r["matched_as_of_date"] for r in centroids.collect()} == {D1}

    tables = ("gold.user_segments", "gold.segment_summary", "gold.segment_centroids")
    before = {t: lake.read(t).collect() for t in tables}
    assert run_segments(lake_root, D2, "--set", "segments.kmeans.seed=7", "--quiet") == 0
    for t in tables:
        assertDataFrameEqual(lake.read(t), before[t], rtol=0, atol=0)

    # one user per row, RFM named for everyone, and the summary covers every user per kind
    summary = lake.read("gold.segment_summary").where(F.col("as_of_date") == F.lit(D2))
    assertDataFrameEqual(
        summary.groupBy("kind").agg(F.sum("users").alias("users")),
        [Row("rfm", 30), Row("cluster", 30)],
    )


def test_build_segments_without_profiles_is_a_clear_error(
    lake_root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_segments(lake_root, D1) == 2
    assert "run build_profiles --as-of 2024-03-31 first" in capsys.readouterr().err
