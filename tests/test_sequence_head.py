"""The sequence head (seqmodel/heads.py): point-in-time histories by hand, age buckets by hand,
and, through Spark → Petastorm → Horovod x2, a label that only the order of events decides.

Planted label: each user has 6 events of random types (view, click, add_to_cart,
remove_from_cart) on 6 days before the cutoff; the label is 1 iff the latest one is an
add_to_cart (a cart left open). No order-free model can do better than the exact posterior
given the type counts, P(latest = add_to_cart | counts) = n_add / 6 (every order of the same
events is equally likely), whose ROC-AUC is computed here as the reference.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shopperlake.churn.train import sequence_candidates
from shopperlake.core.errors import ConfigError, InputError
from shopperlake.seqmodel.build import FUNNEL
from shopperlake.seqmodel.heads import (
    AGE_BUCKETS,
    FittedHead,
    HeadParams,
    age_bucket,
    count_bucket,
    fit_score,
    head_params,
    histories,
    item_index,
    type_token,
    with_arrays,
)
from shopperlake.training.metrics import roc_auc

pytestmark = pytest.mark.training
EVENTS = (
    "user_id STRING, event_id STRING, ts TIMESTAMP, event_date DATE, event_type STRING, "
    "item_id STRING"
)
ROWS = "user_id STRING, cutoff DATE, split STRING, label INT"
CUTOFF = dt.date(2024, 3, 10)


def test_age_and_count_buckets_and_type_tokens_by_hand(spark: SparkSession) -> None:
    days = [0, 1, 2, 3, 4, 7, 8, 15, 16, 8191, 8192, 10**6]
    got = spark.createDataFrame([(d,) for d in days], "d INT").select(age_bucket(F.col("d")))
    assert [r[0] for r in got.collect()] == [1, 2, 3, 3, 4, 4, 5, 5, 6, 14, 15, AGE_BUCKETS - 1]
    counts = [1, 2, 3, 4, 7, 8, 31, 32, 5000]
    got = spark.createDataFrame([(n,) for n in counts], "n INT").select(count_bucket(F.col("n")))
    assert [r[0] for r in got.collect()] == [0, 1, 1, 2, 2, 3, 4, 5, 5]
    # 8 funnel values (7 stages + other): a view is 1, a purchase day of 5 events 5 + 8 * 2
    steps = spark.createDataFrame([(0, 1), (4, 5), (7, 40)], "f INT, n INT")
    got = steps.select(type_token(F.col("f"), F.col("n")))
    assert [r[0] for r in got.collect()] == [1, 21, 48]


def test_arrays_are_left_padded_model_inputs(spark: SparkSession) -> None:
    labelled = spark.createDataFrame(
        [
            ("u1", ["b", None, "z"], [0, 7, 4], [40, 9, 0], [1, 1, 2]),
            ("u2", None, None, None, None),  # no events before the cutoff
        ],
        "user_id STRING, item_ids ARRAY<STRING>, funnels ARRAY<INT>, ages ARRAY<INT>, "
        "counts ARRAY<BIGINT>",
    )
    index = item_index(
        spark.createDataFrame([(["a", "b", "a"],), (["c", None],)], "item_ids ARRAY<STRING>"), 2
    )
    assert index == {"a": 2, "b": 3}  # a twice, then b before c (ties by id); c left out
    got = {r.user_id: r for r in with_arrays(labelled, index, 5).collect()}
    # b has its index; no item and an item outside the index share OTHER (1); 0 pads
    assert got["u1"].items == [0, 0, 3, 1, 1]
    assert got["u1"].types == [0, 0, 1, 8, 5 + 8]
    assert got["u1"].ages == [0, 0, 7, 5, 1]  # 40 days: 2^5 <= 40 < 2^6 -> 5 + 2
    assert got["u2"].items == got["u2"].types == got["u2"].ages == [0] * 5


def test_bad_sequence_settings_are_named() -> None:
    where = "models.churn.sequence"
    with pytest.raises(ConfigError, match="models.churn.sequence: unknown key"):
        head_params({"dims": 8}, where)
    with pytest.raises(ConfigError, match=r"sequence: dim \(30\) must be a multiple of heads"):
        head_params({"dim": 30, "heads": 4}, where)
    with pytest.raises(ConfigError, match="sequence: precision must be one of float32, "):
        head_params({"precision": "float8"}, where)
    with pytest.raises(ConfigError, match="sequence.max_len must be >= 1"):
        head_params({"max_len": 0}, where)
    with pytest.raises(ConfigError, match="sequence.enabled must be bool"):
        head_params({"enabled": "yes"}, where)
    with pytest.raises(ConfigError, match="sequence.step must be one of event, day, got 'week'"):
        head_params({"step": "week"}, where)
    with pytest.raises(ConfigError, match="sequence.next_item_weight must be >= 0, got -0.5"):
        head_params({"next_item_weight": -0.5}, where)
    assert head_params({"dropout": 0, "enabled": True}, where) == HeadParams(
        enabled=True, dropout=0.0
    )
    assert head_params({"max_len": 1}, where).max_len == 1  # the last step alone is a model


def test_the_encoder_gets_every_shared_setting() -> None:
    p = head_params(
        {"max_len": 9, "dim": 12, "blocks": 3, "heads": 3, "dropout": 0.1, "epochs": 4,
         "batch_size": 16, "learning_rate": 0.01, "num_proc": 1, "seed": 5,
         "precision": "mixed_bfloat16", "max_items": 7},
        "models.churn.sequence",
    )  # fmt: skip
    e = p.encoder()
    assert (e.max_len, e.dim, e.blocks, e.heads, e.dropout, e.epochs, e.batch_size,
            e.learning_rate, e.num_proc, e.seed, e.precision) == (
        9, 12, 3, 3, 0.1, 4, 16, 0.01, 1, 5, "mixed_bfloat16")  # fmt: skip
    assert e.max_items == 50_000  # the head's vocabulary is not the softmax's catalogue limit
    d = p.distributed()
    assert (d.num_proc, d.batch_size, d.epochs, d.learning_rate, d.seed, d.precision) == (
        1, 16, 4, 0.01, 5, "mixed_bfloat16")  # fmt: skip


def test_the_head_keeps_float32_logits_under_mixed_precision() -> None:
    import tensorflow as tf

    from shopperlake.seqmodel.heads import build_classifier, vocab_of
    from shopperlake.training.runner import precision_policy

    p = HeadParams(max_len=4, dim=8, heads=2, precision="mixed_float16")
    with precision_policy(p.precision) as policy:
        model = build_classifier(vocab_of({"a": 2, "b": 3}), p)
        x = {c: tf.constant([[0, 2, 3, 1]]) for c in ("items", "types", "ages")}
        hidden = model.encoder.encode(x)
        out = model(x)
    assert policy == "mixed_float16"
    assert hidden.dtype == tf.float16 and out.dtype == tf.float32
    assert all(w.dtype == tf.float32 for w in model.weights)  # float32 master weights


def test_histories_are_the_latest_events_up_to_the_cutoff_day(spark: SparkSession) -> None:
    t = dt.datetime
    events = spark.createDataFrame(
        [
            ("u1", "e1", t(2024, 2, 1, 9), dt.date(2024, 2, 1), "view", "a"),
            ("u1", "e2", t(2024, 3, 1, 9), dt.date(2024, 3, 1), "search", None),
            # same second: the view before the purchase (funnel order), whatever the ids say
            ("u1", "e4", t(2024, 3, 10, 12), dt.date(2024, 3, 10), "view", "b"),
            ("u1", "e3", t(2024, 3, 10, 12), dt.date(2024, 3, 10), "purchase", "b"),
            ("u1", "e5", t(2024, 3, 11, 0), dt.date(2024, 3, 11), "view", "c"),  # after
            ("u2", "f1", t(2024, 3, 12, 8), dt.date(2024, 3, 12), "view", "a"),  # after
            ("u3", "g1", t(2024, 3, 9, 8), dt.date(2024, 3, 9), "view", "a"),  # no row
        ],
        EVENTS,
    )
    rows = spark.createDataFrame(
        [("u1", CUTOFF, "train", 1), ("u1", dt.date(2024, 2, 1), "train", 0),
         ("u2", CUTOFF, "test", 0)],
        ROWS,
    )  # fmt: skip
    got = {(r.user_id, r.cutoff): r for r in histories(events, rows, 3, "event").collect()}
    assert set(got) == {("u1", CUTOFF), ("u1", dt.date(2024, 2, 1))}  # u2: nothing before
    late = got[("u1", CUTOFF)]  # 4 events up to the cutoff day, the latest 3 kept
    assert late.item_ids == [None, "b", "b"]
    assert late.funnels == [len(FUNNEL), FUNNEL.index("view"), FUNNEL.index("purchase")]
    assert late.ages == [9, 0, 0]
    assert late.counts == [1, 1, 1]
    early = got[("u1", dt.date(2024, 2, 1))]
    assert (early.item_ids, early.ages) == (["a"], [0])


def test_day_steps_are_one_per_active_day(spark: SparkSession) -> None:
    t, d = dt.datetime, dt.date
    events = spark.createDataFrame(
        [
            ("u1", "e1", t(2024, 2, 1, 9), d(2024, 2, 1), "view", "a"),
            ("u1", "e2", t(2024, 3, 1, 9), d(2024, 3, 1), "search", None),
            ("u1", "e3", t(2024, 3, 10, 12), d(2024, 3, 10), "view", "b"),
            ("u1", "e4", t(2024, 3, 10, 12), d(2024, 3, 10), "purchase", "b"),
            ("u1", "e5", t(2024, 3, 11, 0), d(2024, 3, 11), "view", "c"),  # after the cutoff
            ("u4", "h1", t(2024, 3, 4, 9), d(2024, 3, 4), "view", "w"),  # 3rd latest day
            # x and y twice each: y, met later, is the day's item; the furthest stage a cart
            ("u4", "h2", t(2024, 3, 5, 9), d(2024, 3, 5), "view", "x"),
            ("u4", "h3", t(2024, 3, 5, 10), d(2024, 3, 5), "view", "y"),
            ("u4", "h4", t(2024, 3, 5, 11), d(2024, 3, 5), "click", "x"),
            ("u4", "h5", t(2024, 3, 5, 12), d(2024, 3, 5), "add_to_cart", "y"),
            # a search (other) and a view: the view is the stage
            ("u4", "h6", t(2024, 3, 6, 9), d(2024, 3, 6), "search", None),
            ("u4", "h7", t(2024, 3, 6, 9, 5), d(2024, 3, 6), "view", "z"),
        ],
        EVENTS,
    )
    rows = spark.createDataFrame([("u1", CUTOFF, "train", 1), ("u4", CUTOFF, "test", 0)], ROWS)
    got = {r.user_id: r for r in histories(events, rows, 3, "day").collect()}
    u1 = got["u1"]  # 38 days: Feb 2024 has 29
    assert u1.item_ids == ["a", None, "b"]
    assert u1.funnels == [FUNNEL.index("view"), len(FUNNEL), FUNNEL.index("purchase")]
    assert (u1.ages, u1.counts) == ([38, 9, 0], [1, 1, 2])
    u4 = {r.user_id: r for r in histories(events, rows, 2, "day").collect()}["u4"]
    assert u4.item_ids == ["y", "z"]
    assert u4.funnels == [FUNNEL.index("add_to_cart"), FUNNEL.index("view")]
    assert (u4.ages, u4.counts) == ([5, 4], [4, 2])
    assert got["u4"].item_ids == ["w", "y", "z"]


def planted(rng: np.random.Generator, users: int, split: str, first: int) -> tuple[list, list]:
    kinds = ["view", "click", "add_to_cart", "remove_from_cart"]
    events, rows = [], []
    for n in range(first, first + users):
        u = f"u{n:05d}"
        types = [kinds[int(k)] for k in rng.integers(0, 4, 6)]
        for k, kind in enumerate(types):
            day = CUTOFF - dt.timedelta(days=6 - k)
            ts = dt.datetime.combine(day, dt.time(10))
            events.append((u, f"{u}-{k}", ts, day, kind, f"i{int(rng.integers(0, 20))}"))
        rows.append((u, CUTOFF, split, int(types[-1] == "add_to_cart")))
    return events, rows


def test_the_head_learns_what_only_the_order_says(spark: SparkSession, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(11)
    events, rows = [], []
    for split, users, first in (("train", 1600, 0), ("validation", 400, 1600),
                                ("test", 600, 2000)):  # fmt: skip
        e, r = planted(rng, users, split, first)
        events += e
        rows += r
    p = HeadParams(enabled=True, max_len=8, dim=16, blocks=1, heads=1, dropout=0.0, epochs=12,
                   batch_size=64, learning_rate=0.005, num_proc=2)  # fmt: skip
    train_labels = np.array([r[3] for r in rows if r[2] == "train"])
    head = fit_score(
        spark, spark.createDataFrame(events, EVENTS), spark.createDataFrame(rows, ROWS), p,
        (tmp_path / "cache").as_uri(), float(train_labels.mean()), ("validation", "test"),
    )  # fmt: skip
    y, prob = head.scores["test"]
    test_rows = sorted((r for r in rows if r[2] == "test"), key=lambda r: r[0])
    assert y.tolist() == [r[3] for r in test_rows]  # (cutoff, user_id) order
    # the order-free optimum: n_add / 6 from each test user's events, counted here
    n_add = {r[0]: 0 for r in test_rows}
    for e in events:
        if e[0] in n_add and e[4] == "add_to_cart":
            n_add[e[0]] += 1
    bag = np.array([n_add[r[0]] / 6 for r in test_rows])
    head_auc, bag_auc = roc_auc(y, prob), roc_auc(y, bag)
    assert bag_auc < 0.85 and head_auc >= 0.95, (head_auc, bag_auc)
    assert head.rows_without_events == {"train": 0, "validation": 0, "test": 0}
    assert head.item_ids[:1] and len(head.item_ids) == 20
    # early stopping watches the validation ROC-AUC (Keras only warns when the monitored
    # metric is missing, and then never stops)
    assert len(head.history["val_auc"]) == len(head.history["loss"]) >= 1


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_one_class_training_rows_are_refused_by_name(spark: SparkSession, rate: float) -> None:
    rows = spark.createDataFrame([("u1", CUTOFF, "train", int(rate))], ROWS)
    events = spark.createDataFrame([], EVENTS)
    with pytest.raises(InputError, match=f"positive rate is {rate}"):
        fit_score(spark, events, rows, HeadParams(enabled=True), "file:///nowhere", rate,
                  ("validation", "test"))  # fmt: skip


def test_executors_score_what_the_driver_model_scores(spark: SparkSession) -> None:
    import tensorflow as tf

    from shopperlake.seqmodel.heads import build_classifier, probabilities, score_column, vocab_of

    tf.keras.utils.set_random_seed(3)
    index = {"a": 2, "b": 3, "c": 4}
    p = HeadParams(max_len=5, dim=8, heads=2)
    model = build_classifier(vocab_of(index), p)  # untrained: any weights will do
    rng = np.random.default_rng(5)
    rows = []
    for n in range(40):
        steps = int(rng.integers(0, 6))  # 0: a row without events (all padding)
        pad = [0] * (5 - steps)
        rows.append((f"u{n}", pad + rng.integers(1, 5, steps).tolist(),
                     pad + rng.integers(1, 20, steps).tolist(),
                     pad + rng.integers(1, AGE_BUCKETS, steps).tolist()))  # fmt: skip
    df = spark.createDataFrame(
        rows, "user_id STRING, items ARRAY<INT>, types ARRAY<INT>, ages ARRAY<INT>"
    ).repartition(3)
    got = score_column(spark, df, index, p, model.get_weights()).toPandas().sort_values("user_id")
    x = {c: np.array([r[k] for r in rows], np.int32) for k, c in enumerate(
        ("items", "types", "ages"), start=1)}  # fmt: skip
    want = dict(zip([r[0] for r in rows], probabilities(model, x), strict=True))
    assert got["score"].to_numpy() == pytest.approx(
        [want[u] for u in got["user_id"]], rel=1e-5, abs=1e-6
    )
    assert len(got) == 40 and got["score"].between(0, 1).all()


def test_candidates_pair_the_same_rows_only() -> None:
    y = np.array([0, 1, 1])
    dnn = {"test": (y, np.array([0.2, 0.6, 0.9]))}
    users = {"test": np.array(["a", "b", "c"], dtype=object)}
    head = FittedHead(
        {"test": (y, np.array([0.4, 0.8, 0.5]))}, {"test": users["test"].copy()},
        [], [], {}, 0.0, {},
    )  # fmt: skip
    out = sequence_candidates(dnn, users, head)
    assert out["blend"]["test"][1].tolist() == pytest.approx([0.3, 0.7, 0.7])
    assert out["sequence"]["test"][1].tolist() == [0.4, 0.8, 0.5]
    # same labels, other users (b and c swapped): refused, not silently paired
    head.users["test"] = np.array(["a", "c", "b"], dtype=object)
    with pytest.raises(InputError, match="sequence head's test rows differ from the DNN's"):
        sequence_candidates(dnn, users, head)


QUERY_ROWS = (
    "user_id STRING, cutoff DATE, split STRING, query_ids ARRAY<STRING>, "
    "query_items ARRAY<STRING>, query_label_list ARRAY<INT>"
)


def planted_queries(rng: np.random.Generator, users: int, split: str, first: int) -> tuple:
    """Each user viewed 6 of 30 items before the cutoff; a row asks about 1-4 items, each
    drawn from the user's history or from the other items with even odds, label 1 iff it is
    in the history: only a head that sees which item it scores can tell them apart."""
    events, rows = [], []
    for n in range(first, first + users):
        u = f"u{n:05d}"
        seen = [f"i{int(k)}" for k in rng.choice(30, 6, replace=False)]
        for k, item in enumerate(seen):
            ts = dt.datetime.combine(CUTOFF - dt.timedelta(days=6 - k), dt.time(10))
            events.append((u, f"{u}-{k}", ts, ts.date(), "view", item))
        unseen = sorted({f"i{k}" for k in range(30)} - set(seen))
        asked = [str(rng.choice(seen if rng.random() < 0.5 else unseen))
                 for _ in range(int(rng.integers(1, 5)))]  # fmt: skip
        rows.append((u, CUTOFF, split, [f"{u}-q{k}" for k in range(len(asked))], asked,
                     [int(i in seen) for i in asked]))  # fmt: skip
    return events, rows


def test_the_query_head_scores_each_item_against_the_history(spark: SparkSession, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(17)
    events, rows = [], []
    for split, users, first in (("train", 1600, 0), ("validation", 400, 1600),
                                ("test", 600, 2000)):  # fmt: skip
        e, r = planted_queries(rng, users, split, first)
        events += e
        rows += r
    # multi-task too: the next-item loss of these random views cannot fall below log(30), so
    # the query must still be learnt through the head's loss. The validation ROC-AUC sits
    # near 0.5 for some epochs before the head finds the match (about 12 steps an epoch
    # here), so early stopping is off (patience = epochs): with patience 3 it could stop there
    p = HeadParams(enabled=True, max_len=8, dim=16, blocks=1, heads=1, dropout=0.0, epochs=25,
                   batch_size=64, learning_rate=0.005, num_proc=2, step="event",
                   next_item_weight=0.5, patience=25)  # fmt: skip
    train_labels = np.concatenate([r[5] for r in rows if r[2] == "train"])
    head = fit_score(
        spark, spark.createDataFrame(events, EVENTS), spark.createDataFrame(rows, QUERY_ROWS),
        p, (tmp_path / "cache").as_uri(), float(train_labels.mean()), ("validation", "test"),
        queries=4,
    )  # fmt: skip
    y, prob = head.scores["test"]
    want = sorted(
        (q, label) for r in rows if r[2] == "test" for q, label in zip(r[3], r[5], strict=True)
    )
    assert head.ids["test"].tolist() == [q for q, _ in want]  # every query, by id
    assert y.tolist() == [label for _, label in want]
    # the reference that ignores the history: the item's positive rate among training queries
    hits: dict[str, list[int]] = {}
    for r in rows:
        if r[2] == "train":
            for item, label in zip(r[4], r[5], strict=True):
                hits.setdefault(item, []).append(label)
    item_of = {q: i for r in rows for q, i in zip(r[3], r[4], strict=True)}
    item_rate = np.array([np.mean(hits.get(item_of[q], [0.5])) for q, _ in want])
    head_auc, item_auc = roc_auc(y, prob), roc_auc(y, item_rate)
    assert item_auc < 0.6 and head_auc >= 0.9, (head_auc, item_auc)
    assert len(head.item_ids) == 30 and head.users == {} and head.cutoffs == {}
    # the encoder's own loss was trained and watched (Horovod averages it over the ranks)
    assert min(head.history["next_item_loss"]) > 0 and head.history["val_next_item_loss"]
    assert max(head.history["val_auc"]) >= 0.9, head.history["val_auc"]


def test_too_many_query_items_are_refused_by_name(spark: SparkSession) -> None:
    rows = spark.createDataFrame(
        [("u1", CUTOFF, "train", ["a", "b", "c"], ["i1", "i2", "i3"], [0, 1, 0])], QUERY_ROWS
    )
    events = spark.createDataFrame([], EVENTS)
    with pytest.raises(InputError, match="holds 3 query items, more than the 2"):
        fit_score(spark, events, rows, HeadParams(enabled=True), "file:///nowhere", 0.3,
                  ("validation", "test"), queries=2)  # fmt: skip


def test_executors_score_each_query_as_the_driver_model_does(spark: SparkSession) -> None:
    import tensorflow as tf

    from shopperlake.seqmodel.heads import build_classifier, probabilities, score_column, vocab_of

    tf.keras.utils.set_random_seed(4)
    index = {"a": 2, "b": 3, "c": 4}
    p = HeadParams(max_len=5, dim=8, heads=2)
    model = build_classifier(vocab_of(index), p, queries=3)  # untrained: any weights will do
    rng = np.random.default_rng(6)
    rows = []
    for n in range(30):
        steps = int(rng.integers(0, 6))  # 0: a row without events (all padding)
        pad = [0] * (5 - steps)
        asked = int(rng.integers(1, 4))
        rows.append((f"u{n}", pad + rng.integers(1, 5, steps).tolist(),
                     pad + rng.integers(1, 20, steps).tolist(),
                     pad + rng.integers(1, AGE_BUCKETS, steps).tolist(),
                     rng.integers(1, 5, asked).tolist() + [0] * (3 - asked)))  # fmt: skip
    df = spark.createDataFrame(
        rows,
        "user_id STRING, items ARRAY<INT>, types ARRAY<INT>, ages ARRAY<INT>, queries ARRAY<INT>",
    ).repartition(3)
    got = (
        score_column(spark, df, index, p, model.get_weights(), queries=3)
        .toPandas()
        .sort_values("user_id")
    )
    x = {c: np.array([r[k] for r in rows], np.int32) for k, c in enumerate(
        ("items", "types", "ages", "queries"), start=1)}  # fmt: skip
    want = dict(zip([r[0] for r in rows], probabilities(model, x), strict=True))
    assert np.stack(got["scores"].to_numpy()) == pytest.approx(
        np.stack([want[u] for u in got["user_id"]]), rel=1e-5, abs=1e-6
    )
    # the same history asks about different items: different scores
    assert len(got) == 30 and np.ptp(np.stack(got["scores"].to_numpy()), axis=1).max() > 0


def test_the_next_item_loss_by_hand() -> None:
    import tensorflow as tf

    from shopperlake.seqmodel.heads import next_item_loss

    class Table:  # the encoder's item table: padding 0, items 1..3
        item_emb = tf.keras.layers.Embedding(4, 2)

    Table.item_emb.build((None,))
    table = np.array([[9.0, 9.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    Table.item_emb.set_weights([table])
    items = np.array([[0, 2, 3], [1, 3, 2]], np.int32)  # row 0: left padding
    h = np.array([[[5.0, 5.0], [1.0, 0.0], [0.0, 0.0]],
                  [[0.0, 2.0], [2.0, 0.0], [7.0, 7.0]]], np.float32)  # fmt: skip

    def ce(state: list[float], target: int) -> float:  # softmax over items 1..3 only
        logits = table[1:] @ np.array(state)
        return float(np.log(np.exp(logits).sum()) - logits[target - 1])

    # steps whose next step is an item, both real: (0, 1) -> 3, (1, 0) -> 3, (1, 1) -> 2;
    # (0, 0) is padding, and a last step has no next one
    want = (ce([1, 0], 3) + ce([0, 2], 3) + ce([2, 0], 2)) / 3
    got = float(next_item_loss(Table, tf.constant(h), tf.constant(items)))
    assert got == pytest.approx(want, rel=1e-6)
