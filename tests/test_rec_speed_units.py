"""The in-task (scipy / numpy) item-CF and EASE against straightforward references: a Spark
self-join for co-occurrence, a Spark join for item-CF scores, dense numpy for EASE; random
data with many ties (the tie-break is the lower item id, as in ``common.top_n``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from shopperlake.rec.common import top_dense, top_entries, top_n
from shopperlake.rec.ease import ease_weights, gram_matrix, score_ease
from shopperlake.rec.itemcf import (
    _recommend_itemcf_join,
    cap_items,
    item_similarity,
    recommend_itemcf,
)

INTER = "user_id STRING, item_id STRING, weight DOUBLE"


def _random_interactions(spark: SparkSession, seed: int) -> DataFrame:
    """40 users × up to 7 of 15 items, integer weights 1..3 (ties in the cap and the scores)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(40):
        k = int(rng.integers(1, 8))
        for i in rng.choice(15, size=k, replace=False):
            rows.append((f"u{u:02d}", f"i{int(i):02d}", float(rng.integers(1, 4))))
    return spark.createDataFrame(rows, INTER)


def _similarity_reference(
    inter: DataFrame, similarity: str, min_support: int, neighbours: int, cap: int
) -> DataFrame:
    """The capped self-join formulation (what item_similarity computed before scipy)."""
    ui = cap_items(inter, cap).select("user_id", "item_id")
    counts = ui.groupBy("item_id").agg(F.count(F.lit(1)).alias("n"))
    a, b = ui.alias("a"), ui.alias("b")
    pairs = (
        a.join(b, (F.col("a.user_id") == F.col("b.user_id"))
               & (F.col("a.item_id") != F.col("b.item_id")))
        .groupBy(F.col("a.item_id").alias("item_id"), F.col("b.item_id").alias("similar_item_id"))
        .agg(F.count(F.lit(1)).alias("c"))
        .where(F.col("c") >= min_support)
    )  # fmt: skip
    ni = counts.select("item_id", F.col("n").alias("n_i"))
    nj = counts.select(F.col("item_id").alias("similar_item_id"), F.col("n").alias("n_j"))
    joined = pairs.join(ni, "item_id").join(nj, "similar_item_id")
    if similarity == "cosine":
        score = F.col("c") / F.sqrt(F.col("n_i") * F.col("n_j"))
    else:
        score = F.col("c") / (F.col("n_i") + F.col("n_j") - F.col("c"))
    scored = joined.select("item_id", "similar_item_id", score.alias("score"))
    return top_n(scored, "item_id", neighbours, tie="similar_item_id")


@pytest.mark.parametrize("similarity", ["cosine", "jaccard"])
def test_item_similarity_matches_self_join(spark: SparkSession, similarity: str) -> None:
    inter = _random_interactions(spark, 3)
    # cap 4 < up to 7 items per user: the cap (ties on weight -> lower item id) matters
    got = item_similarity(inter, similarity, min_support=2, neighbours=3, max_items_per_user=4)
    want = _similarity_reference(inter, similarity, 2, 3, 4)
    assert got.columns == ["item_id", "similar_item_id", "score", "rank"]
    assertDataFrameEqual(got, want, rtol=1e-12)


def test_recommend_itemcf_matches_join_and_breaks_ties_by_item_id(spark: SparkSession) -> None:
    inter = _random_interactions(spark, 5)
    sims = item_similarity(inter, "cosine", min_support=1, neighbours=5, max_items_per_user=50)
    got: pd.DataFrame = recommend_itemcf(inter, sims, 4).toPandas()
    want: pd.DataFrame = _recommend_itemcf_join(inter, sims, 4).toPandas()
    key = ["user_id", "item_id"]
    merged = got.merge(want, on=key, how="outer", suffixes=("_got", "_want"), indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"]
    np.testing.assert_allclose(merged["score_got"], merged["score_want"], rtol=1e-12)
    # an exact tie: b and c score 0.5 for u1, the lower id (b) is kept; u2 knows no item
    tie_sims = spark.createDataFrame(
        [("a", "b", 0.5, 1), ("a", "c", 0.5, 2), ("a", "d", 0.25, 3)],
        "item_id STRING, similar_item_id STRING, score DOUBLE, rank INT",
    )
    users = spark.createDataFrame([("u1", "a", 1.0), ("u2", "z", 1.0)], INTER)
    assertDataFrameEqual(
        recommend_itemcf(users, tie_sims, 1),
        spark.createDataFrame([("u1", "b", 0.5)], "user_id STRING, item_id STRING, score DOUBLE"),
    )


def test_gram_matrix_binary_with_min_users(spark: SparkSession) -> None:
    inter = _random_interactions(spark, 11)
    dup = inter.limit(5)  # duplicate (user, item) rows: X stays binary
    gram = gram_matrix(spark, inter.unionByName(dup), max_items=100, min_users=3)
    assert gram is not None
    pdf: pd.DataFrame = inter.toPandas()
    x = pd.crosstab(pdf["user_id"], pdf["item_id"]).clip(upper=1)
    x = x.loc[:, x.sum() >= 3]
    assert gram.item_ids == sorted(x.columns)
    np.testing.assert_array_equal(gram.matrix, x.T.to_numpy() @ x.to_numpy())


def test_ease_weights_cholesky_matches_inverse() -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((300, 70)) < 0.1).astype(float)
    g = x.T @ x
    for lam in (0.5, 50.0):
        p = np.linalg.inv(g + lam * np.eye(70))
        ref = p / -np.diag(p)
        np.fill_diagonal(ref, 0.0)
        np.testing.assert_allclose(ease_weights(g, lam), ref, atol=1e-12)
    # not positive definite (a negative λ): the general inverse, same formula
    d = np.diag([1.0, 2.0, 3.0])
    p = np.linalg.inv(d - 1.5 * np.eye(3))
    ref = p / -np.diag(p)
    np.fill_diagonal(ref, 0.0)
    np.testing.assert_allclose(ease_weights(d, -1.5), ref)


def test_score_ease_matches_dense_reference_with_ties(spark: SparkSession) -> None:
    rng = np.random.default_rng(2)
    item_ids = ["i05", "i01", "i09", "i03", "i00", "i07", "i02"]  # not sorted on purpose
    w = rng.integers(-2, 3, size=(7, 7)).astype(float)  # small integers: many exact ties
    rows = [("u0", "i05", 1.0), ("u0", "i09", 2.0), ("u1", "i00", 1.0), ("u1", "zz", 1.0),
            ("u2", "zz", 1.0), ("u3", "i02", 1.0), ("u3", "i03", 1.0), ("u3", "i07", 1.0),
            ("u3", "i02", 1.0)]  # fmt: skip
    inter = spark.createDataFrame(rows, INTER)
    for n, block in ((3, 2), (10, 7)):
        got = score_ease(spark, inter, item_ids, w, n, block_items=block, rows_per_chunk=2)
        want = []
        for user in ("u0", "u1", "u3"):  # u2 knows no item: no rows
            known = {i for u, i, _ in rows if u == user and i in item_ids}
            x = np.array([1.0 if i in known else 0.0 for i in item_ids])
            s = x @ w
            ranked = sorted(range(7), key=lambda j: (-s[j], item_ids[j]))[:n]
            want += [(user, item_ids[j], float(s[j])) for j in ranked]
        assertDataFrameEqual(
            got, spark.createDataFrame(want, "user_id STRING, item_id STRING, score DOUBLE")
        )


def test_top_helpers_order_and_ties() -> None:
    scores = np.array([[1.0, 3.0, 3.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    r, c, v = top_dense(scores, 2)
    assert r.tolist() == [0, 0, 1, 1] and c.tolist() == [1, 2, 0, 1]
    np.testing.assert_array_equal(v, [3.0, 3.0, 0.0, 0.0])
    r, c, v = top_entries(
        np.array([2, 0, 2, 2]), np.array([5, 1, 3, 4]), np.array([1.0, 9, 1, 2]), 2
    )
    assert list(zip(r.tolist(), c.tolist(), strict=True)) == [(0, 1), (2, 4), (2, 3)]
