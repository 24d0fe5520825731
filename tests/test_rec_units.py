"""Recommender building blocks on tiny hand-computed cases."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from shopperlake.rec.ease import ease_weights, gram_matrix, score_ease
from shopperlake.rec.evaluate import random_split
from shopperlake.rec.hybrid import blend, finalise
from shopperlake.rec.interactions import interactions
from shopperlake.rec.itemcf import item_similarity, recommend_itemcf
from shopperlake.rec.params import RecParams
from shopperlake.rec.popularity import recommend_popular, segment_popularity
from shopperlake.training.registry import ModelVersion

EVENTS = "user_id STRING, item_id STRING, event_type STRING, ts TIMESTAMP, event_date DATE"
INTER = "user_id STRING, item_id STRING, weight DOUBLE"


def _ev(spark: SparkSession, rows: list[tuple[str, str, str, str]]) -> DataFrame:
    parsed = [
        (u, i, t, dt.datetime.fromisoformat(ts), dt.date.fromisoformat(ts[:10]))
        for u, i, t, ts in rows
    ]
    return spark.createDataFrame(parsed, EVENTS)


def test_interactions_weights_decay_and_point_in_time(spark: SparkSession) -> None:
    events = _ev(
        spark,
        [
            ("u1", "i1", "purchase", "2024-01-31 10:00:00"),  # age 0: 5
            ("u1", "i1", "view", "2024-01-21 09:00:00"),  # age 10 = one half-life: 0.5
            ("u1", "i2", "purchase", "2024-01-30 10:00:00"),  # cancelled by the return
            ("u1", "i2", "return", "2024-01-30 12:00:00"),
            ("u2", "i1", "view", "2024-02-01 00:00:00"),  # after the as-of day: ignored
            ("u2", "i3", "search", "2024-01-31 08:00:00"),  # type without a weight: ignored
            ("u2", "i2", "view", "2024-01-11 08:00:00"),  # age 20: 0.25
        ],
    )
    got = interactions(
        events, dt.date(2024, 1, 31), {"view": 1.0, "purchase": 5.0, "return": -5.0}, 10.0
    )
    expected = spark.createDataFrame([("u1", "i1", 5.5), ("u2", "i2", 0.25)], INTER)
    assertDataFrameEqual(got, expected)
    # A lookback of 15 days drops the view 20 days back (and the one 10 days back stays).
    short = interactions(events, dt.date(2024, 1, 31), {"view": 1.0, "purchase": 5.0}, 10.0, 15)
    assert {(r.user_id, r.item_id) for r in short.collect()} == {("u1", "i1"), ("u1", "i2")}


def _three_users(spark: SparkSession) -> DataFrame:
    # u1: a b c, u2: a b, u3: b c d  ->  n_a=2 n_b=3 n_c=2 n_d=1; c_ab=2 c_ac=1 c_bc=2 c_bd=1 c_cd=1
    rows = [("u1", "a", 1.0), ("u1", "b", 1.0), ("u1", "c", 1.0), ("u2", "a", 1.0),
            ("u2", "b", 2.0), ("u3", "b", 1.0), ("u3", "c", 1.0), ("u3", "d", 1.0)]  # fmt: skip
    return spark.createDataFrame(rows, INTER)


SIM = "item_id STRING, similar_item_id STRING, score DOUBLE, rank INT"


def test_itemcf_cosine_by_hand(spark: SparkSession) -> None:
    got = item_similarity(_three_users(spark), "cosine", min_support=1, neighbours=2)
    ab, bc, bd, cd = 2 / math.sqrt(6), 2 / math.sqrt(6), 1 / math.sqrt(3), 1 / math.sqrt(2)
    expected = [
        ("a", "b", ab, 1), ("a", "c", 0.5, 2),
        ("b", "a", ab, 1), ("b", "c", bc, 2),  # tie with a: the item id decides; d is 3rd
        ("c", "b", bc, 1), ("c", "d", cd, 2),
        ("d", "c", cd, 1), ("d", "b", bd, 2),
    ]  # fmt: skip
    assertDataFrameEqual(got.select("item_id", "similar_item_id", "score", "rank"),
                         spark.createDataFrame(expected, SIM))  # fmt: skip
    # Minimum support 2 keeps only the pairs two users share: a-b and b-c.
    strong = item_similarity(_three_users(spark), "cosine", min_support=2, neighbours=5)
    pairs = {(r.item_id, r.similar_item_id) for r in strong.collect()}
    assert pairs == {("a", "b"), ("b", "a"), ("b", "c"), ("c", "b")}


def test_itemcf_jaccard_and_user_scores(spark: SparkSession) -> None:
    jac = item_similarity(_three_users(spark), "jaccard", min_support=2, neighbours=5)
    got = {(r.item_id, r.similar_item_id): r.score for r in jac.collect()}
    assert got[("a", "b")] == pytest.approx(2 / 3)  # 2 / (2 + 3 - 2)
    assert got[("b", "c")] == pytest.approx(2 / 3)
    sims = item_similarity(_three_users(spark), "cosine", min_support=1, neighbours=5)
    recs = recommend_itemcf(_three_users(spark).where("user_id = 'u2'"), sims, 10)
    scores = {r.item_id: r.score for r in recs.collect()}
    # u2 has a (1) and b (2): c = 1 * 0.5 + 2 * 2/sqrt(6); d = 2 * 1/sqrt(3); a = 2 * 2/sqrt(6)
    assert scores["c"] == pytest.approx(0.5 + 4 / math.sqrt(6))
    assert scores["d"] == pytest.approx(2 / math.sqrt(3))
    assert scores["a"] == pytest.approx(4 / math.sqrt(6))
    assert scores["b"] == pytest.approx(2 / math.sqrt(6))


def test_ease_matches_per_column_ridge(spark: SparkSession) -> None:
    rows = [("u1", "i0", 1.0), ("u1", "i1", 1.0), ("u2", "i1", 1.0), ("u2", "i2", 1.0),
            ("u3", "i0", 1.0), ("u3", "i1", 1.0), ("u3", "i2", 1.0)]  # fmt: skip
    inter = spark.createDataFrame(rows, INTER)
    gram = gram_matrix(spark, inter, max_items=10)
    assert gram is not None and gram.item_ids == ["i0", "i1", "i2"]
    # X = [[1,1,0],[0,1,1],[1,1,1]] by hand -> X^T X:
    expected_g = np.array([[2, 2, 1], [2, 3, 2], [1, 2, 2]], dtype=float)
    np.testing.assert_array_equal(gram.matrix, expected_g)
    lam = 1.0
    b = ease_weights(gram.matrix, lam)
    # Independent reference: EASE with diag(B) = 0 is, column by column, a ridge regression
    # of item j on the other items: B[-j, j] = (G[-j,-j] + lam I)^-1 G[-j, j].
    ref = np.zeros((3, 3))
    for j in range(3):
        rest = [i for i in range(3) if i != j]
        sub = expected_g[np.ix_(rest, rest)] + lam * np.eye(2)
        ref[rest, j] = np.linalg.solve(sub, expected_g[rest, j])
    np.testing.assert_allclose(b, ref, atol=1e-10)
    # Blockwise scoring (one item per block) gives x_u B, top-2 per user.
    recs = score_ease(spark, inter, gram.item_ids, b, n=2, block_items=1)
    x = np.array([[1, 1, 0], [0, 1, 1], [1, 1, 1]], dtype=float)
    s = x @ ref
    for u, row in zip(("u1", "u2", "u3"), s, strict=True):
        got = {r.item_id: r.score for r in recs.where(F.col("user_id") == u).collect()}
        want = {f"i{j}": row[j] for j in np.argsort(-row, kind="stable")[:2]}
        assert got.keys() == want.keys(), (u, got, want)
        for item, value in want.items():
            assert got[item] == pytest.approx(value, abs=1e-5)
    assert gram_matrix(spark, inter, max_items=2) is None  # over the limit: EASE is skipped


CANDS = "user_id STRING, item_id STRING, score DOUBLE, source STRING"
RECS = "user_id STRING, rank INT, item_id STRING, score DOUBLE, source STRING"


def test_rules_exclude_bought_cap_categories_and_fill_cold_users(spark: SparkSession) -> None:
    catalog = spark.createDataFrame(
        [("i1", "A"), ("i2", "A"), ("i3", "A"), ("i4", "B"), ("i6", "C"), ("i7", "R")],
        "item_id STRING, category STRING",
    )
    cands = spark.createDataFrame(
        [("u1", "i1", 0.9, "ease"), ("u1", "i2", 0.8, "ease"), ("u1", "i3", 0.7, "als"),
         ("u1", "i4", 0.6, "als"), ("u1", "i5", 0.5, "ease"), ("u1", "i7", 0.4, "itemcf")],
        CANDS,
    )  # fmt: skip
    users = spark.createDataFrame([("u1",), ("u2",)], "user_id STRING")
    fallback = spark.createDataFrame(
        [(u, i, s) for u in ("u1", "u2") for i, s in
         (("i6", 1.0), ("i4", 0.5), ("i2", 1 / 3), ("i3", 0.25))],
        "user_id STRING, item_id STRING, score DOUBLE",
    )  # fmt: skip
    bought = spark.createDataFrame([("u1", "i1"), ("u1", "i7")], "user_id STRING, item_id STRING")
    got = finalise(cands, users, fallback, catalog, bought, k=3, max_per_category=1,
                   repeat_categories=["R"])  # fmt: skip
    expected = spark.createDataFrame(
        [
            # i1 bought (A is not repeat-purchase); i3 over the cap of A; i5 not in catalogue;
            # i7 bought but R is repeat-purchase.
            ("u1", 1, "i2", 0.8, "ease"), ("u1", 2, "i4", 0.6, "als"),
            ("u1", 3, "i7", 0.4, "itemcf"),
            # cold user: popularity, one per category, below every real candidate score
            ("u2", 1, "i6", -1.0, "popularity"), ("u2", 2, "i4", -1.5, "popularity"),
            ("u2", 3, "i2", 1 / 3 - 2, "popularity"),
        ],
        RECS,
    )  # fmt: skip
    assertDataFrameEqual(got, expected)


def _uncategorised(spark: SparkSession) -> tuple[DataFrame, DataFrame, DataFrame, DataFrame]:
    """a1-a3 in category A, n1-n4 without category; u1 has candidates, u2 only the fill."""
    catalog = spark.createDataFrame(
        [("a1", "A"), ("a2", "A"), ("a3", "A"), ("n1", None), ("n2", None), ("n3", None),
         ("n4", None)],
        "item_id STRING, category STRING",
    )  # fmt: skip
    src = spark.createDataFrame(
        [("u1", "a1", 0.9), ("u1", "a2", 0.8), ("u1", "a3", 0.7), ("u1", "n1", 0.6),
         ("u1", "n2", 0.5), ("u1", "n3", 0.4)],
        SCORES,
    )  # fmt: skip
    fallback = spark.createDataFrame(
        [(u, i, sc) for u in ("u1", "u2")
         for i, sc in (("n4", 1.0), ("a1", 0.5), ("a2", 1 / 3), ("a3", 0.25))],
        SCORES,
    )  # fmt: skip
    users = spark.createDataFrame([("u1",), ("u2",)], "user_id STRING")
    return catalog, src, fallback, users


def test_cap_spares_items_without_category_and_never_shortens_a_list(spark: SparkSession) -> None:
    catalog, src, fallback, users = _uncategorised(spark)
    cands = src.withColumn("source", F.lit("s"))
    got = finalise(cands, users, fallback, catalog, None, k=5, max_per_category=2)
    expected = spark.createDataFrame(
        [
            # A is capped at 2 (a3 waits); n1-n3 have no category: each is its own group.
            ("u1", 1, "a1", 0.9, "s"), ("u1", 2, "a2", 0.8, "s"), ("u1", 3, "n1", 0.6, "s"),
            ("u1", 4, "n2", 0.5, "s"), ("u1", 5, "n3", 0.4, "s"),
            # u2's pool is 4 items: n4, a1, a2 within the cap, then a3 over it (not dropped).
            ("u2", 1, "n4", -1.0, "popularity"), ("u2", 2, "a1", -1.5, "popularity"),
            ("u2", 3, "a2", 1 / 3 - 2, "popularity"), ("u2", 4, "a3", -1.75, "popularity"),
        ],
        RECS,
    )  # fmt: skip
    assertDataFrameEqual(got, expected)


def test_tuner_evaluation_spares_items_without_category_like_finalise(
    spark: SparkSession,
) -> None:
    from shopperlake.rec.ranker import evaluate_weights, validation_frame
    from shopperlake.training.ranking import ranking_metrics

    catalog, src, fallback, users = _uncategorised(spark)
    # u1's n3 is 5th (third item without category), u2's a3 4th (over A's cap, last).
    # ndcg@5 = (1 / log2(6) + 1 / log2(5)) / 2; recall@5 = 1.
    truth = spark.createDataFrame([("u1", "n3"), ("u2", "a3")], PAIRS)
    want = (1 / math.log2(6) + 1 / math.log2(5)) / 2
    frame = validation_frame({"s": src}, truth, users, fallback, catalog, None)
    assert evaluate_weights(frame, {"s": 1.0}, "ndcg@5", 2) == pytest.approx(want)
    assert evaluate_weights(frame, {"s": 1.0}, "recall@5", 2) == pytest.approx(1.0)
    recs = finalise(blend({"s": src}, {"s": 1.0}), users, fallback, catalog, None, 5, 2)
    assert ranking_metrics(recs, truth, (5,))["ndcg@5"] == pytest.approx(want)


def test_short_lists_names_users_without_k_distinct_items(spark: SparkSession) -> None:
    from shopperlake.rec.hybrid import short_lists

    recs = spark.createDataFrame(
        [("full", "a"), ("full", "b"), ("full", "c"), ("short", "a"), ("short", "b"),
         ("twice", "a"), ("twice", "a"), ("twice", "b")],
        PAIRS,
    )  # fmt: skip
    users = spark.createDataFrame([("full",), ("short",), ("twice",), ("none",)], "user_id STRING")
    assertDataFrameEqual(
        short_lists(recs, users, 3),
        spark.createDataFrame(
            [("short", 2), ("twice", 2), ("none", 0)], "user_id STRING, items BIGINT"
        ),
    )


def test_blend_reciprocal_rank(spark: SparkSession) -> None:
    a = spark.createDataFrame(
        [("u1", "x", 0.9), ("u1", "y", 0.1)], INTER.replace("weight", "score")
    )
    b = spark.createDataFrame(
        [("u1", "y", 5.0), ("u1", "z", 1.0)], INTER.replace("weight", "score")
    )
    got = blend({"a": a, "b": b, "c": a}, {"a": 1.0, "b": 2.0, "c": 0.0}, "rrf", rrf_k=0)
    # rrf_k = 0: norm = 1 / rank. x = 1*1; y = 1*(1/2) + 2*1; z = 2*(1/2). c has weight 0.
    expected = spark.createDataFrame(
        [("u1", "x", 1.0, "a"), ("u1", "y", 2.5, "b"), ("u1", "z", 1.0, "b")], CANDS
    )
    assertDataFrameEqual(got, expected)


def test_segment_popularity_and_fallback_to_global(spark: SparkSession) -> None:
    inter = spark.createDataFrame(
        [("u1", "p", 3.0), ("u2", "q", 1.0), ("u3", "q", 1.0), ("u3", "r", 0.5)], INTER
    )
    segs = spark.createDataFrame(
        [("u1", "S1"), ("u2", "S2"), ("u3", "S2")], "user_id STRING, segment STRING"
    )
    popular = segment_popularity(inter, segs, 2)
    users = spark.createDataFrame(
        [("u1", "S1"), ("u9", None), ("u8", "S9")], "user_id STRING, segment STRING"
    )
    got = recommend_popular(users, popular)
    # Global: p 3.0, q 2.0 (r 0.5 is third). S1 has only p: its list goes on with the global
    # items it lacks (q), so a small segment still fills a list. u9 (no segment) and u8
    # (unknown segment) get the global list.
    expected = spark.createDataFrame(
        [("u1", "p", 1.0), ("u1", "q", 0.5), ("u9", "p", 1.0), ("u9", "q", 0.5),
         ("u8", "p", 1.0), ("u8", "q", 0.5)],
        "user_id STRING, item_id STRING, score DOUBLE",
    )  # fmt: skip
    assertDataFrameEqual(got, expected)
    # S2's own order (q 2.0, r 0.5) comes first, then global p; n = 2 cuts it to q, r.
    ranks = "segment STRING, item_id STRING, rank INT"
    assertDataFrameEqual(
        popular.select("segment", "item_id", "rank"),
        spark.createDataFrame(
            [("S1", "p", 1), ("S1", "q", 2), ("S2", "q", 1), ("S2", "r", 2),
             ("__all__", "p", 1), ("__all__", "q", 2)],
            ranks,
        ),
    )  # fmt: skip


def test_random_split_is_per_user_seeded_and_keeps_single_items(spark: SparkSession) -> None:
    rows = [(f"u{u}", f"i{i}", 1.0) for u in range(20) for i in range(10)] + [("solo", "i0", 1.0)]
    inter = spark.createDataFrame(rows, INTER)
    train, test = random_split(inter, 0.3, seed=7)
    train2, test2 = random_split(inter, 0.3, seed=7)
    assertDataFrameEqual(test, test2)
    assert train.count() + test.count() == len(rows)
    assert train.join(test, ["user_id", "item_id"]).count() == 0
    assert test.where("user_id = 'solo'").count() == 0
    share = test.count() / 200
    assert 0.2 < share < 0.4, share
    assert test.select("user_id").distinct().count() >= 15  # spread over users


def test_stratified_split_takes_the_ratio_of_every_users_pairs(spark: SparkSession) -> None:
    from shopperlake.rec.evaluate import stratified_split

    # n pairs per user -> test pairs = min(round half up(ratio * n), n - 1), ratio 0.5:
    # solo 1 -> 0 (one pair stays in train); two 2 -> 1; three 3 -> round(1.5) = 2;
    # four 4 -> 2; five 5 -> round(2.5) = 3; ten 10 -> 5.
    sizes = {"solo": 1, "two": 2, "three": 3, "four": 4, "five": 5, "ten": 10}
    rows = [(u, f"i{j}", 1.0) for u, n in sizes.items() for j in range(n)]
    inter = spark.createDataFrame(rows, INTER)
    train, test = stratified_split(inter, 0.5, seed=7)
    per_user = {r.user_id: r["count"] for r in test.groupBy("user_id").count().collect()}
    assert per_user == {"two": 1, "three": 2, "four": 2, "five": 3, "ten": 5}
    # The test pairs are each user's first ones in the order of the seeded hash (ties: item).
    order = Window.partitionBy("user_id").orderBy(
        F.xxhash64("user_id", "item_id", F.lit(7)), "item_id"
    )
    first = inter.withColumn("pos", F.row_number().over(order)).join(
        spark.createDataFrame([(u, n) for u, n in per_user.items()], "user_id STRING, n INT"),
        "user_id",
    )
    assertDataFrameEqual(test, first.where("pos <= n").select("user_id", "item_id"))
    assertDataFrameEqual(train.unionByName(test.withColumn("weight", F.lit(1.0))), inter)
    # 0.9 of two pairs rounds to 2, but one stays in train; 0.2 of 3 rounds to 1, of 2 to 0.
    _, high = stratified_split(inter.where("user_id = 'two'"), 0.9, seed=7)
    assert high.count() == 1
    _, low = stratified_split(inter.where("user_id IN ('two', 'three')"), 0.2, seed=7)
    assert [r.user_id for r in low.collect()] == ["three"]
    # Seeded: the same seed gives the same split, another seed another one.
    assertDataFrameEqual(stratified_split(inter, 0.5, seed=7)[1], test)
    other = stratified_split(inter, 0.5, seed=8)[1]
    assert {tuple(r) for r in other.collect()} != {tuple(r) for r in test.collect()}


def test_split_last_order_holds_out_each_users_latest_basket(spark: SparkSession) -> None:
    from shopperlake.rec.evaluate import split_last_order

    schema = "user_id STRING, item_id STRING, event_type STRING, order_id STRING, ts TIMESTAMP"
    t = dt.datetime.fromisoformat
    events = spark.createDataFrame(
        [
            ("u1", "i1", "purchase", "o1", t("2024-01-01 10:00:00")),
            ("u1", "i2", "purchase", "o1", t("2024-01-01 10:00:00")),
            ("u1", "i2", "purchase", "o2", t("2024-01-05 10:00:00")),
            ("u1", "i3", "purchase", "o2", t("2024-01-05 10:00:00")),
            ("u1", "i9", "view", None, t("2024-01-06 10:00:00")),
            ("u2", "i4", "purchase", "o3", t("2024-01-02 10:00:00")),
        ],
        schema,
    )
    train, truth = split_last_order(events)
    assertDataFrameEqual(
        truth,
        spark.createDataFrame(
            [("u1", "i2"), ("u1", "i3"), ("u2", "i4")], "user_id STRING, item_id STRING"
        ),
    )
    got = {(r.user_id, r.item_id, r.order_id) for r in train.collect()}
    assert got == {("u1", "i1", "o1"), ("u1", "i2", "o1"), ("u1", "i9", None)}


SCORES = "user_id STRING, item_id STRING, score DOUBLE"
PAIRS = "user_id STRING, item_id STRING"


def _catalog(spark: SparkSession, items: dict[str, str]) -> DataFrame:
    return spark.createDataFrame(sorted(items.items()), "item_id STRING, category STRING")


def test_weight_tuner_finds_the_blend_that_no_single_source_reaches(spark: SparkSession) -> None:
    from shopperlake.rec.ranker import tune_weights, validation_frame
    from shopperlake.training.ranking import ranking_metrics

    # rrf_k = 0: norm = 1 / rank.  a: u1 x(1) y(1/2), u2 p(1) q(1/2);  b: u1 y(1) z(1/2),
    # u2 r(1) p(1/2).  Relevant: u1 y, u2 p.  With weights (wa, wb), at rank 1:
    # u1 gets y iff wa/2 + wb > wa (wb > wa/2); u2 gets p iff wa + wb/2 > wb (wb < 2 wa).
    # a alone or b alone: one user each, ndcg@1 = 0.5; config (1, 3): 3 > 2, u2 misses: 0.5.
    # Ascent over {0, 1, 3}, a first: a=0 → b alone 0.5; a=3 → (3, 3) hits both: 1.0. Then b:
    # b=0 → 0.5, b=1 → (3, 1): 1 < 1.5, u1 misses: 0.5. Second pass moves nothing.
    a = spark.createDataFrame(
        [("u1", "x", 0.9), ("u1", "y", 0.5), ("u2", "p", 0.9), ("u2", "q", 0.5)], SCORES
    )
    b = spark.createDataFrame(
        [("u1", "y", 0.9), ("u1", "z", 0.5), ("u2", "r", 0.9), ("u2", "p", 0.5)], SCORES
    )
    truth = spark.createDataFrame([("u1", "y"), ("u2", "p")], PAIRS)
    users = spark.createDataFrame([("u1",), ("u2",)], "user_id STRING")
    fallback = spark.createDataFrame([("u1", "w", 1.0), ("u2", "w", 1.0)], SCORES)
    catalog = _catalog(spark, {i: i.upper() for i in "pqrwxyz"})
    frame = validation_frame({"a": a, "b": b}, truth, users, fallback, catalog, None)
    tuned = tune_weights(frame, {"a": 1.0, "b": 3.0}, (0.0, 1.0, 3.0), "ndcg@1", 10, 2,
                         [("rrf", 0.0)])  # fmt: skip
    assert tuned.start == {"config": 0.5, "a": 0.5, "b": 0.5}
    assert tuned.weights == {"a": 3.0, "b": 3.0}
    assert tuned.value == 1.0
    # The real blend + rules + metrics agree with the tuner's own evaluation.
    recs = finalise(blend({"a": a, "b": b}, tuned.weights, "rrf", 0.0), users, fallback,
                    catalog, None, 1, 10)  # fmt: skip
    assert ranking_metrics(recs, truth, (1,))["ndcg@1"] == 1.0


def test_tuner_evaluation_applies_catalogue_bought_cap_and_fill(spark: SparkSession) -> None:
    from shopperlake.rec.ranker import evaluate_weights, validation_frame

    # u1's source list: i9 (not in catalogue), i1 A, i2 A, i3 B (bought), i4 A. With one item
    # per category: i1, then the popularity fill i5 C (i6 C capped), i7 D → top 3 i1 i5 i7.
    # u2 has no candidates: fill i5, i7, then i6 over C's cap (the cap never shortens a list).
    # u3 is not a user to serve: left out.
    # Truth u1 {i2, i7}: hit at rank 3 → ndcg@3 = (1/log2 4) / (1 + 1/log2 3) = 0.5 / 1.63093,
    # recall@3 = 1/2; u2 {i1}: 0.
    src = spark.createDataFrame(
        [("u1", "i9", 1.0), ("u1", "i1", 0.9), ("u1", "i2", 0.8), ("u1", "i3", 0.7),
         ("u1", "i4", 0.6), ("u3", "i1", 1.0)], SCORES,
    )  # fmt: skip
    fallback = spark.createDataFrame(
        [(u, i, s) for u in ("u1", "u2") for i, s in (("i5", 1.0), ("i6", 0.5), ("i7", 0.25))],
        SCORES,
    )
    catalog = _catalog(spark, {"i1": "A", "i2": "A", "i3": "B", "i4": "A", "i5": "C", "i6": "C",
                               "i7": "D"})  # fmt: skip
    truth = spark.createDataFrame([("u1", "i2"), ("u1", "i7"), ("u2", "i1"), ("u3", "i1")], PAIRS)
    users = spark.createDataFrame([("u1",), ("u2",)], "user_id STRING")
    bought = spark.createDataFrame([("u1", "i3")], PAIRS)
    frame = validation_frame({"a": src}, truth, users, fallback, catalog, bought)
    ndcg_u1 = (1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert evaluate_weights(frame, {"a": 1.0}, "ndcg@3", 1) == pytest.approx(ndcg_u1 / 2)
    assert evaluate_weights(frame, {"a": 1.0}, "recall@3", 1) == pytest.approx(0.25)
    # Weight 0 leaves the source out: popularity only, i5 i7 for both: recall (1/2 + 0) / 2.
    assert evaluate_weights(frame, {"a": 0.0}, "recall@3", 1) == pytest.approx(0.25)
    assert evaluate_weights(frame, {"a": 0.0}, "hit_rate@1", 1) == 0.0


def test_tuner_picks_the_normalisation_that_ranks_the_relevant_item_first(
    spark: SparkSession,
) -> None:
    from shopperlake.rec.ranker import tune_weights, validation_frame

    # a: x 10, y 9, w 2; b: w 5, y 4, z 1; relevant y; weights 1 and 1.
    # rrf_k = 0: x 1, y 1/2 + 1/2 = 1, w 1/3 + 1 = 4/3 → w first: hit@1 = 0.
    # min-max: a x 1, y 7/8, w 0; b w 1, y 3/4, z 0 → y 13/8 first: hit@1 = 1.
    a = spark.createDataFrame([("u1", "x", 10.0), ("u1", "y", 9.0), ("u1", "w", 2.0)], SCORES)
    b = spark.createDataFrame([("u1", "w", 5.0), ("u1", "y", 4.0), ("u1", "z", 1.0)], SCORES)
    truth = spark.createDataFrame([("u1", "y")], PAIRS)
    users = spark.createDataFrame([("u1",)], "user_id STRING")
    fallback = spark.createDataFrame([("u1", "v", 1.0)], SCORES)
    catalog = _catalog(spark, {i: i for i in "vwxyz"})
    frame = validation_frame({"a": a, "b": b}, truth, users, fallback, catalog, None)
    tuned = tune_weights(frame, {"a": 1.0, "b": 1.0}, (1.0,), "hit_rate@1", 10, 1,
                         [("rrf", 0.0), ("minmax", 0.0)])  # fmt: skip
    assert tuned.start == {"config": 0.0, "a": 0.0, "b": 0.0}  # measured with rrf
    assert (tuned.normalise, tuned.weights, tuned.value) == ("minmax", {"a": 1.0, "b": 1.0}, 1.0)


def test_repeat_source_ranks_own_items_by_weight(spark: SparkSession) -> None:
    from shopperlake.rec.repeat import recommend_repeat

    inter = spark.createDataFrame(
        [("u1", "a", 1.0), ("u1", "b", 3.0), ("u1", "c", 2.0), ("u2", "a", 0.5)], INTER
    )
    expected = spark.createDataFrame([("u1", "b", 3.0), ("u1", "c", 2.0), ("u2", "a", 0.5)], SCORES)
    assertDataFrameEqual(recommend_repeat(inter, 2), expected)


def _rec_params(**promotion: object) -> RecParams:
    from shopperlake.core.config import load_config

    section = load_config("local").section("recommender")
    section["promotion"] = {**section["promotion"], **promotion}
    return RecParams.from_config(section)


def test_blend_config_is_checked_and_tuned_weights_replace_the_sources() -> None:
    from shopperlake.core.config import load_config
    from shopperlake.core.errors import ConfigError

    params = _rec_params()
    assert params.blend_mode == "tuned"
    swapped = params.with_blend({"als": 2.0, "repeat": 0.5}, "minmax")
    others = {k: v for k, v in swapped.weights().items() if k not in ("als", "repeat")}
    assert swapped.weights()["als"] == 2.0 and swapped.weights()["repeat"] == 0.5
    assert set(others) == set(params.weights()) - {"als", "repeat"}
    assert set(others.values()) == {0.0}  # not fitted, not blended
    assert swapped.blend["normalise"] == "minmax"
    assert swapped.blend["rrf_k"] == params.blend["rrf_k"]
    for key, value in (("blend", {"mode": "learned"}), ("blend", {"objective": "auc@10"}),
                       ("promotion", {"metric": "ndcg@7"})):  # fmt: skip
        section = load_config("local").section("recommender")
        section[key] = {**section[key], **value}
        with pytest.raises(ConfigError):
            RecParams.from_config(section)


def test_promotion_gate_keeps_current_when_the_new_version_is_worse(tmp_path: Path) -> None:
    import json

    from shopperlake.rec.job import promote
    from shopperlake.training.registry import Registry

    registry = Registry(tmp_path / "models")

    def version(metrics: dict[str, object]) -> ModelVersion:
        mv = registry.new_version("recommender")
        (mv.path / "params.json").write_text("{}")
        (mv.path / "metrics.json").write_text(json.dumps(metrics))
        return mv

    def hybrid(ndcg: float) -> dict[str, dict[str, float]]:
        return {"hybrid": {"ndcg@10": ndcg, "recall@10": 0.5}, "als": {"ndcg@10": 0.9}}

    params = _rec_params(metric="ndcg@10", min_delta=0.0)
    first = version({"last_order": hybrid(0.20)})
    assert promote(registry, first, hybrid(0.20), "last_order", params) == (
        True, None)  # fmt: skip
    worse = version({"last_order": hybrid(0.15)})
    assert promote(registry, worse, hybrid(0.15), "last_order", params) == (
        False, 0.20)  # fmt: skip
    assert registry.current("recommender") == first.version  # still registered, not current
    assert worse.path.is_dir()
    # Within min_delta of the current value: promoted.
    near = version({"last_order": hybrid(0.19)})
    lenient = _rec_params(metric="ndcg@10", min_delta=0.02)
    assert promote(registry, near, hybrid(0.19), "last_order", lenient) == (
        True, 0.20)  # fmt: skip
    assert registry.current("recommender") == near.version
    # Another protocol has nothing to compare with: promoted.
    other = version({"holdout": hybrid(0.01)})
    assert promote(registry, other, hybrid(0.01), "holdout", params) == (True, None)
    assert registry.current("recommender") == other.version
