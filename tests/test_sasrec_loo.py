"""The sequence models' leave-one-out data and ranking, on hand-built rows worked out by hand:
item steps (first occurrences), indices, training inputs/targets, the validation and test
rows, and the rank / HR / NDCG of a target among unseen items."""

from __future__ import annotations

import math

import numpy as np
from pyspark.sql import SparkSession

from shopperlake.seqmodel import loo
from shopperlake.sequences.train import hit_ndcg, target_ranks

SEQ_SCHEMA = "user_id STRING, item_ids ARRAY<STRING>, event_types ARRAY<STRING>, " \
    "categories ARRAY<STRING>"  # fmt: skip
ROWS = [
    # u1 meets b, a, c, d (a's click and b's purchase repeat items already met)
    ("u1", ["b", "a", "a", "c", "b", "d"],
     ["view", "view", "click", "add_to_cart", "purchase", "view"],
     ["k1", "k1", "k1", "k2", "k1", None]),
    # u2: two distinct items only: left out (fewer than 3 steps)
    ("u2", ["a", "b", "a"], ["view", "view", "view"], ["k1", "k1", "k1"]),
    # u3: exactly 3 steps: no training transition, still evaluated
    ("u3", ["c", "a", "e"], ["view", "purchase", "view"], ["k2", "k1", "k2"]),
]  # fmt: skip


def test_steps_indices_and_splits(spark: SparkSession) -> None:
    seqs = spark.createDataFrame(ROWS, SEQ_SCHEMA)
    steps = {r.user_id: r for r in loo.item_steps(seqs).collect()}
    assert set(steps) == {"u1", "u3"}
    assert steps["u1"].item_ids == ["b", "a", "c", "d"]
    assert steps["u1"].event_types == ["view", "view", "add_to_cart", "view"]
    assert steps["u1"].n == 4

    indexed = loo.index_steps(spark, loo.item_steps(seqs))
    # items in id order a..e → 1..5; categories k1 → 1, k2 → 2 (d has none: 0)
    assert indexed.item_ids == ["a", "b", "c", "d", "e"]
    assert indexed.vocab.item_category.tolist() == [0, 1, 1, 2, 0, 2]
    rows = {r.user_id: r for r in indexed.rows.collect()}
    assert rows["u1"].items == [2, 1, 3, 4]
    assert rows["u1"].types == [1, 1, 3, 1]  # view = 1, add_to_cart = 3 (funnel order + 1)
    assert rows["u3"].items == [3, 1, 5] and rows["u3"].types == [1, 5, 1]

    train = {r.user_id: r for r in loo.training_rows(indexed.rows, 3).collect()}
    # u1 trains on b, a (its last two steps are held out): input b → target a
    assert set(train) == {"u1"}
    assert train["u1"].items == [0, 0, 2] and train["u1"].targets == [0, 0, 1]
    assert train["u1"].types == [0, 0, 1]

    test = {r.user_id: r for r in loo.evaluation_rows(indexed.rows, "test", 2).collect()}
    assert test["u1"].items == [1, 3] and test["u1"].seen == [2, 1, 3]
    assert test["u1"].target == 4 and test["u1"].types == [1, 3]
    val = {r.user_id: r for r in loo.evaluation_rows(indexed.rows, "validation", 3).collect()}
    assert val["u1"].items == [0, 2, 1] and val["u1"].seen == [2, 1] and val["u1"].target == 3
    assert val["u3"].items == [0, 0, 3] and val["u3"].target == 1

    pairs = sorted((r.user_id, r.item_id) for r in loo.interactions(indexed.rows).collect())
    assert pairs == [("u1", "1"), ("u1", "2"), ("u3", "3")]

    # every event a step (repeats kept), every step training data (held_out=0)
    events = {r.user_id: r for r in loo.item_steps(seqs, 3, distinct=False).collect()}
    assert set(events) == {"u1", "u2", "u3"}
    assert events["u2"].item_ids == ["a", "b", "a"] and events["u2"].n == 3
    assert events["u1"].event_types == ROWS[0][2]
    by_event = loo.index_steps(spark, loo.item_steps(seqs, 2, distinct=False))
    all_steps = {r.user_id: r for r in loo.training_rows(by_event.rows, 4, 0).collect()}
    # u2: a → b → a: inputs a, b; targets b, a (a re-order is a target)
    assert all_steps["u2"].items == [0, 0, 1, 2] and all_steps["u2"].targets == [0, 0, 2, 1]
    counts = loo.target_counts(loo.training_rows(by_event.rows, 4, 0), len(by_event.item_ids))
    # targets (the last 4 of each row): u1 a c b d (its first target, a, is cut by max_len 4),
    # u2 b a, u3 a e → a 3, b 2, c 1, d 1, e 1
    assert counts.tolist() == [0, 3, 2, 1, 1, 1]


def test_rank_removes_seen_items_and_breaks_ties_by_index() -> None:
    s = np.array(
        [
            # column 0 is padding; seen 2 (highest) is removed; target 4 (0.5) is behind
            # item 1 (0.9) and ties item 3 (0.5, lower index): rank 2
            [9.0, 0.9, 5.0, 0.5, 0.5, 0.1],
            # target 1 ties 3 and 5 but has the lowest index: rank 0
            [0.0, 0.2, 0.1, 0.2, 0.0, 0.2],
        ]
    )
    r = target_ranks(s, [np.array([2]), np.array([], dtype=np.int64)], np.array([4, 1]))
    assert r.tolist() == [2, 0]
    hit, ndcg = hit_ndcg(np.array([2, 0, 10, 9]), 10)
    assert hit.tolist() == [1.0, 1.0, 0.0, 1.0]
    assert np.allclose(ndcg, [1 / math.log2(4), 1.0, 0.0, 1 / math.log2(11)])
