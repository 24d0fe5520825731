"""Top-K ranking metrics on Spark against values worked out by hand."""

from __future__ import annotations

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import LongType, StringType, StructField, StructType

from shopperlake.core.errors import SchemaError
from shopperlake.training.ranking import (
    coverage,
    novelty,
    per_user_ranking_metrics,
    ranking_metrics,
)

RECS = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("item_id", StringType(), False),
        StructField("rank", LongType(), False),
    ]
)
TRUTH = StructType(
    [StructField("user_id", StringType(), False), StructField("item_id", StringType(), False)]
)
POPULARITY = StructType(
    [StructField("item_id", StringType(), False), StructField("count", LongType(), False)]
)

# A: relevant {x, y}, recs [x, z, y]          (hits at ranks 1 and 3)
# B: relevant {w},    recs [v, w, z]          (hit at rank 2)
# C: relevant {z},    no recommendations      (scores 0 everywhere)
# D: no relevant items, recs [x, y]           (not averaged over)
# The truth row (A, x) appears twice: relevance is a set, so |R_A| stays 2.
REC_ROWS = [
    ("A", "x", 1), ("A", "z", 2), ("A", "y", 3),
    ("B", "v", 1), ("B", "w", 2), ("B", "z", 3),
    ("D", "x", 1), ("D", "y", 2),
]  # fmt: skip
TRUTH_ROWS = [("A", "x"), ("A", "y"), ("A", "x"), ("B", "w"), ("C", "z")]


@pytest.fixture(scope="module")
def recs(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(REC_ROWS, RECS)


@pytest.fixture(scope="module")
def truth(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(TRUTH_ROWS, TRUTH)


def test_ranking_metrics_by_hand(recs: DataFrame, truth: DataFrame) -> None:
    # log2(2) = 1, log2(3) = 1.5849625, log2(4) = 2; IDCG for 2 relevant = 1 + 1/log2(3)
    # = 1.6309298.
    #
    # k=1  A: P 1, R 1/2, NDCG 1/1 = 1, AP (1/1)/min(2,1) = 1, hit 1
    #      B: all 0 (rank 1 is v)            C: all 0
    # k=2  A: P 1/2, R 1/2, NDCG 1/1.6309298 = 0.6131472, AP (1/1)/2 = 1/2, hit 1
    #      B: P 1/2, R 1, NDCG (1/log2 3)/1 = 0.6309298, AP (1/2)/1 = 1/2, hit 1
    # k=3  A: P 2/3, R 1, NDCG (1 + 1/2)/1.6309298 = 0.9197208, AP (1/1 + 2/3)/2 = 5/6, hit 1
    #      B: P 1/3, R 1, NDCG 0.6309298, AP 1/2, hit 1
    # k=5  (longer than every list) A: P 2/5, B: P 1/5; the rest as at k=3.
    # Averages over the three truth users A, B, C:
    got = ranking_metrics(recs, truth, ks=(1, 2, 3, 5))
    expected = {
        "precision@1": 1 / 3,  # (1 + 0 + 0)/3
        "recall@1": 1 / 6,  # (1/2 + 0 + 0)/3
        "ndcg@1": 1 / 3,
        "map@1": 1 / 3,
        "hit_rate@1": 1 / 3,
        "precision@2": 1 / 3,  # (1/2 + 1/2 + 0)/3
        "recall@2": 0.5,  # (1/2 + 1 + 0)/3
        "ndcg@2": 0.4146923154456386,  # (0.6131472 + 0.6309298)/3
        "map@2": 1 / 3,  # (1/2 + 1/2 + 0)/3
        "hit_rate@2": 2 / 3,
        "precision@3": 1 / 3,  # (2/3 + 1/3 + 0)/3
        "recall@3": 2 / 3,  # (1 + 1 + 0)/3
        "ndcg@3": 0.5168835142398817,  # (0.9197208 + 0.6309298)/3
        "map@3": 0.4444444444444444,  # (5/6 + 1/2 + 0)/3 = 4/9
        "hit_rate@3": 2 / 3,
        "precision@5": 0.2,  # (2/5 + 1/5 + 0)/3
        "recall@5": 2 / 3,
        "ndcg@5": 0.5168835142398817,
        "map@5": 0.4444444444444444,
        "hit_rate@5": 2 / 3,
    }
    assert got.keys() == expected.keys()
    assert got == pytest.approx(expected)


def test_per_user_values_by_hand(spark: SparkSession, recs: DataFrame, truth: DataFrame) -> None:
    # The per-user values of the table above at k=3 (what bootstrap intervals resample):
    # one row per truth user A, B, C; D (no relevant items) is not there.
    got = per_user_ranking_metrics(recs, truth, ks=(3,)).select(
        "user_id", "`recall@3`", "`ndcg@3`", "`hit_rate@3`"
    )
    rows = sorted((r[0], r[1], r[2], r[3]) for r in got.collect())
    assert [r[0] for r in rows] == ["A", "B", "C"]
    assert [r[1:] for r in rows] == [
        pytest.approx((1.0, 0.9197207891481876, 1.0)),
        pytest.approx((1.0, 0.6309297535714575, 1.0)),
        (0.0, 0.0, 0.0),
    ]


def test_ranking_metrics_ideal_list_scores_one(spark: SparkSession) -> None:
    # E: relevant {a, b, c}, recs [a, b]: at k=2 every relevant slot is filled
    # (IDCG over min(3, 2) = 2 positions, AP divides by 2) -> NDCG 1, AP (1 + 1)/2 = 1,
    # P 1, R 2/3.
    recs = spark.createDataFrame([("E", "a", 1), ("E", "b", 2)], RECS)
    truth = spark.createDataFrame([("E", "a"), ("E", "b"), ("E", "c")], TRUTH)
    got = ranking_metrics(recs, truth, ks=[2])
    assert got == pytest.approx(
        {"precision@2": 1.0, "recall@2": 2 / 3, "ndcg@2": 1.0, "map@2": 1.0, "hit_rate@2": 1.0}
    )


def test_coverage_counts_distinct_items_in_top_k(recs: DataFrame) -> None:
    # top-1: {x, v} (x twice) -> 2/10; top-2 adds z, w, y -> 5/10; top-3 adds nothing new.
    assert coverage(recs, catalog_size=10, k=1) == pytest.approx(0.2)
    assert coverage(recs, catalog_size=10, k=2) == pytest.approx(0.5)
    assert coverage(recs, catalog_size=10, k=3) == pytest.approx(0.5)


def test_novelty_is_mean_self_information(spark: SparkSession, recs: DataFrame) -> None:
    # Counts x 8 (given as two rows 5 + 3), y 4, z 2, v 1, w 1; total 16.
    # -log2(share): x 1 bit, y 2, z 3, v 4, w 4.
    popularity = spark.createDataFrame(
        [("x", 5), ("x", 3), ("y", 4), ("z", 2), ("v", 1), ("w", 1), ("unused", 0)], POPULARITY
    )
    # top-1 recommendations x (A), v (B), x (D): (1 + 4 + 1)/3 = 2
    assert novelty(recs, popularity, k=1) == pytest.approx(2.0)
    # top-2: A x,z  B v,w  D x,y: (1 + 3 + 4 + 4 + 1 + 2)/6 = 2.5
    assert novelty(recs, popularity, k=2) == pytest.approx(2.5)


def test_novelty_rejects_items_without_popularity(spark: SparkSession, recs: DataFrame) -> None:
    popularity = spark.createDataFrame([("x", 8), ("z", 2), ("v", 1)], POPULARITY)
    # top-2 holds w (B) and y (D), neither in popularity.
    with pytest.raises(ValueError, match="2 top-2 recommendation"):
        novelty(recs, popularity, k=2)


def test_invalid_arguments(spark: SparkSession, recs: DataFrame, truth: DataFrame) -> None:
    with pytest.raises(ValueError, match="ks must be a non-empty list of positive integers"):
        ranking_metrics(recs, truth, ks=(5, 0))
    with pytest.raises(ValueError, match="at least one user with relevant items"):
        ranking_metrics(recs, truth.limit(0), ks=(2,))
    with pytest.raises(SchemaError, match=r"recs lacks column\(s\) \['rank'\]"):
        ranking_metrics(recs.drop("rank"), truth)
    with pytest.raises(ValueError, match="catalog_size must be >= 1"):
        coverage(recs, catalog_size=0, k=2)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        coverage(recs, catalog_size=10, k=0)


def test_list_comparison_pairs_lists_on_the_same_users(
    spark: SparkSession, recs: DataFrame, truth: DataFrame
) -> None:
    from shopperlake.rec.evaluate import list_comparison
    from shopperlake.training.model_metrics import BootstrapSettings

    # "blank" recommends only to D (no relevant items): A, B, C all score 0 on it.
    blank = spark.createDataFrame([("D", "x", 1)], RECS)
    result = list_comparison(
        {"hybrid": recs, "blank": blank, "same": recs},
        truth,
        ["ndcg@3"],
        BootstrapSettings(resamples=200, seed=3),
    )
    hybrid = result.intervals["hybrid"]["ndcg@3"]
    assert hybrid.estimate == pytest.approx(0.5168835142398817)  # the hand table's ndcg@3
    # resampling 3 users: means of 3 draws from {0.9197, 0.6309, 0}
    assert 0.0 <= hybrid.low <= hybrid.estimate <= hybrid.high <= 0.9197207891481876
    assert result.intervals["blank"]["ndcg@3"].high == 0.0
    same = result.differences["same"]["ndcg@3"]
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)
    assert result.differences["blank"]["ndcg@3"].estimate == pytest.approx(0.5168835142398817)
    assert result.verdicts()["same"] == {"ndcg@3": "on par"}
