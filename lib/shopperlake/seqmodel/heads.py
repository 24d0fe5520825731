"""Behaviour prediction from the event sequence: the SASRec encoder (:mod:`.sasrec`) over each
labelled row's latest events before its cutoff, a logistic head on the last position, trained
with the shared Horovod/Petastorm runner. ``train --model churn|propensity`` fits it as the
``sequence`` candidate next to the DNN on aggregate features when
``models.<name>.sequence.enabled`` (see :mod:`shopperlake.churn.train`).

Inputs of a row (user, cutoff): the user's latest ``max_len`` steps up to the end of the
cutoff day (point in time). A step is (``step: event``) one event of any type, ordered as in
``gold.user_sequences`` (time, funnel order, event id), or (``step: day``) one day with
events, so that a 40-line invoice or a browsing session is one step, not 40 (on order-line
data 50 events are the last one or two orders). Each step is

- item: the item's index among the ``max_items`` items most frequent in the training rows'
  histories; ``OTHER`` (1) for any other item and for steps without one. A day's item: its
  most frequent item (ties: the one met latest, then the greatest id);
- type: the funnel index + 1 (view .. review), ``len(FUNNEL) + 1`` for any other type (a day:
  its furthest funnel stage), combined with the step's event count in log2 buckets (1, 2-3,
  4-7, 8-15, 16-31, 32+; always the first for an event):
  ``funnel + 1 + (len(FUNNEL) + 1) * count_bucket``;
- age: days from the step to the cutoff in log2 buckets: 1 = the cutoff day, 2 = 1 day
  before, 3 = 2-3 days, 4 = 4-7, ... capped at ``AGE_BUCKETS - 1`` (0 = padding), so the last
  position carries the recency the churn literature leans on.

The head is trained with the DNN's balanced class weights; its raw outputs, like the DNN's,
are calibrated by the training job.

**Query items** (``queries > 0`` in :func:`fit_score`, the return head): a row also carries up
to ``queries`` items to score, e.g. the lines of a customer's purchase day, each with its own
label. Each query item's embedding (the encoder's item table) attends over the history
(cross-attention: does the customer's past hold this item or ones like it?) and a small dense
layer reads [item, attended history, last position, item × last position] into one logit per
query. The encoder runs once per row, not once per line, and padding queries carry weight 0.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from shopperlake.core.errors import ConfigError, InputError
from shopperlake.seqmodel import sasrec
from shopperlake.seqmodel.build import FUNNEL, funnel_rank
from shopperlake.seqmodel.sasrec import SasRecParams, Vocab
from shopperlake.training import petastorm_io, runner
from shopperlake.training.worker_cache import worker_model

OTHER = 1  # item index of items outside the vocabulary and of events without an item
AGE_BUCKETS = 16  # 0 padding, 1 the cutoff day, ..., 15: 2^13 days and older
COUNT_BUCKETS = 6  # events in a step: 1, 2-3, 4-7, 8-15, 16-31, 32 and more
STEPS = ("event", "day")
ARRAYS = ("items", "types", "ages")
QUERY_ARRAYS = ("queries", "query_labels", "query_weights")  # right-padded, length ``queries``


@dataclass(frozen=True)
class HeadParams:
    """``models.<name>.sequence``: the encoder's size and the Horovod fit. The fields that
    :class:`SasRecParams` also has mean the same there and reach the encoder through
    :meth:`encoder` by name; ``max_items`` (the item vocabulary), ``step`` and ``patience``
    are the head's own."""

    enabled: bool = False
    max_len: int = 50
    dim: int = 32
    blocks: int = 1
    heads: int = 2
    dropout: float = 0.2
    epochs: int = 20
    batch_size: int = 128  # per Horovod process
    learning_rate: float = 0.001  # scaled by the number of processes
    num_proc: int = 2
    seed: int = 7
    precision: str = "float32"  # float32, mixed_float16 (GPU), mixed_bfloat16, auto
    max_items: int = 100  # items with their own embedding (the most frequent ones)
    step: str = "day"  # a step of the sequence: one event, or one day with events
    patience: int = 3  # epochs without a better validation ROC-AUC before the fit stops
    next_item_weight: float = 0.0  # multi-task: weight of the encoder's next-item loss

    def encoder(self) -> SasRecParams:
        """The encoder's settings: every field the two share, by name (``max_items`` is not
        shared: there it is the catalogue limit of the next-item softmax)."""
        shared = {f.name for f in fields(SasRecParams)} - {"max_items"}
        return SasRecParams(**{f.name: getattr(self, f.name) for f in fields(self)
                               if f.name in shared})  # fmt: skip

    def distributed(self) -> runner.Distributed:
        return runner.Distributed(self.num_proc, self.batch_size, self.epochs,
                                  self.learning_rate, self.seed, self.precision)  # fmt: skip


def head_params(block: dict[str, Any], where: str) -> HeadParams:
    """Typed and checked ``block``; ``where`` names it in errors."""
    known = {f.name: f for f in fields(HeadParams)}
    unknown = set(block) - set(known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for key, value in block.items():
        kind = type(getattr(HeadParams(), key))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"{where}.{key} must be {kind.__name__}, got {value!r}")
        values[key] = value
    p = HeadParams(**values)
    for key in ("max_len", "max_items", "patience"):
        if getattr(p, key) < 1:
            raise ConfigError(f"{where}.{key} must be >= 1, got {getattr(p, key)}")
    if p.next_item_weight < 0:
        raise ConfigError(f"{where}.next_item_weight must be >= 0, got {p.next_item_weight}")
    if p.step not in STEPS:
        raise ConfigError(f"{where}.step must be one of {', '.join(STEPS)}, got {p.step!r}")
    # the encoder's own checks (dim, heads, dropout, precision, ...); one step is enough here
    replace(p.encoder(), max_len=max(p.max_len, 2)).validate(where)
    return p


def histories(events: DataFrame, rows: DataFrame, max_len: int, step: str) -> DataFrame:
    """(user_id, cutoff, item_ids, funnels, ages, counts): for each distinct (user_id, cutoff)
    of ``rows`` with at least one event up to the end of the cutoff day, its latest ``max_len``
    steps (``step``: ``event`` or ``day``, see the module) oldest first (``funnels``:
    :func:`funnel_rank`, a day's furthest known stage; ``ages``: days before the cutoff;
    ``counts``: events in the step)."""
    keys = rows.select("user_id", "cutoff").distinct()
    events = (
        events.select(
            "user_id", "event_id", "ts", "event_date", "item_id", funnel_rank().alias("funnel")
        )
        .join(keys, "user_id")
        .where(
            (F.col("event_date") <= F.col("cutoff"))
            & (F.col("ts") < F.to_timestamp(F.date_add("cutoff", 1)))
        )
        .withColumn("age", F.datediff("cutoff", "event_date"))
    )
    if step == "event":
        steps = events.withColumn("n", F.lit(1))
    elif step == "day":
        day = ["user_id", "cutoff", "event_date", "age"]
        known = F.when(F.col("funnel") < len(FUNNEL), F.col("funnel"))
        per_item = (
            events.where(F.col("item_id").isNotNull())
            .groupBy(*day, "item_id")
            .agg(F.count(F.lit(1)).alias("item_n"), F.max("ts").alias("item_ts"))
        )
        top = per_item.groupBy(*day).agg(
            F.max_by("item_id", F.struct("item_n", "item_ts", "item_id")).alias("item_id")
        )
        steps = (
            events.groupBy(*day)
            .agg(
                F.count(F.lit(1)).alias("n"),
                F.coalesce(F.max(known), F.lit(len(FUNNEL))).alias("funnel"),
                F.max("ts").alias("ts"),
                F.max("event_id").alias("event_id"),
            )
            .join(top, day, "left")
        )
    else:
        raise ValueError(f"step must be one of {', '.join(STEPS)}, got {step!r}")
    latest = Window.partitionBy("user_id", "cutoff").orderBy(
        F.desc("ts"), F.desc("funnel"), F.desc("event_id")
    )
    kept = steps.withColumn("from_end", F.row_number().over(latest)).where(
        F.col("from_end") <= max_len
    )
    ordered = F.sort_array(
        F.collect_list(F.struct("ts", "funnel", "event_id", "item_id", "age", "n"))
    )
    return (
        kept.groupBy("user_id", "cutoff")
        .agg(ordered.alias("steps"))
        .select(
            "user_id",
            "cutoff",
            F.col("steps.item_id").alias("item_ids"),
            F.col("steps.funnel").alias("funnels"),
            F.col("steps.age").alias("ages"),
            F.col("steps.n").alias("counts"),
        )
    )


def _doublings(value: Column, top: int) -> Column:
    """How many of 2, 4, ..., 2^top ``value`` reaches: floor(log2(value)) capped at ``top``
    for value >= 1, in exact integer comparisons (no floating-point log)."""
    thresholds = F.array(*(F.lit(2**k) for k in range(1, top + 1)))
    return F.size(F.filter(thresholds, lambda t: value >= t))


def age_bucket(days: Column) -> Column:
    """1 for 0 days, ``floor(log2(days)) + 2`` otherwise, capped at ``AGE_BUCKETS - 1``."""
    return F.when(days < 1, F.lit(1)).otherwise(_doublings(days, AGE_BUCKETS - 3) + 2)


def count_bucket(count: Column) -> Column:
    """0 for 1 event, ``floor(log2(count))`` otherwise, capped at ``COUNT_BUCKETS - 1``."""
    return _doublings(count, COUNT_BUCKETS - 1)


def type_token(funnel: Column, count: Column) -> Column:
    """The step's type input: funnel + 1 and the count bucket in one token (1 ..
    ``(len(FUNNEL) + 1) * COUNT_BUCKETS``; 0 is padding)."""
    return funnel + 1 + (len(FUNNEL) + 1) * count_bucket(count)


def item_index(
    labelled: DataFrame, max_items: int, columns: Sequence[str] = ("item_ids",)
) -> dict[str, int]:
    """The ``max_items`` most frequent item ids of ``labelled``'s array ``columns`` together
    (count descending, then id) → 2, 3, ..."""
    ids = F.flatten(F.array(*(F.coalesce(c, F.array().cast("array<string>")) for c in columns)))
    top = (
        labelled.select(F.explode(ids).alias("item_id"))
        .where(F.col("item_id").isNotNull())
        .groupBy("item_id")
        .count()
        .orderBy(F.desc("count"), "item_id")
        .limit(max_items)
        .collect()
    )
    return {row.item_id: OTHER + 1 + n for n, row in enumerate(top)}


def with_arrays(labelled: DataFrame, index: dict[str, int], max_len: int) -> DataFrame:
    """``labelled`` (``histories`` columns, null for a row without events) with the model's
    left-padded ``items``, ``types``, ``ages`` int arrays of length ``max_len`` (a row without
    events: all padding), built on the executors."""
    pad = F.array_repeat(F.lit(0), max_len - F.coalesce(F.size("item_ids"), F.lit(0)))
    lookup = F.create_map(*(F.lit(v) for kv in index.items() for v in kv))

    def item(i: Column) -> Column:
        if not index:
            return F.lit(OTHER)
        return F.when(i.isNull(), OTHER).otherwise(F.coalesce(lookup[i], F.lit(OTHER)))

    steps = {
        "items": F.transform("item_ids", item),
        "types": F.zip_with("funnels", "counts", type_token),
        "ages": F.transform("ages", age_bucket),
    }
    empty = F.array_repeat(F.lit(0), max_len)
    return labelled.withColumns(
        {
            name: F.when(F.col("item_ids").isNull(), empty).otherwise(F.concat(pad, column))
            for name, column in steps.items()
        }
    )


def with_queries(
    labelled: DataFrame, index: dict[str, int], queries: int, weights: tuple[float, float]
) -> DataFrame:
    """``labelled`` (with ``query_items`` and ``query_label_list``, arrays of at most
    ``queries``) plus the right-padded model arrays of length ``queries``: ``queries`` (item
    index, ``OTHER`` outside the vocabulary, 0 padding), ``query_labels`` and
    ``query_weights`` (``weights[label]``, the class weights; 0 for padding)."""
    lookup = F.create_map(*(F.lit(v) for kv in index.items() for v in kv))
    pad = queries - F.size("query_items")
    other = F.lit(OTHER)

    def padded(values: Column, fill: Any) -> Column:
        return F.concat(values, F.array_repeat(F.lit(fill), pad))

    item = (lambda i: F.coalesce(lookup[i], other)) if index else (lambda i: other)
    negative, positive = weights
    return labelled.withColumns(
        {
            "queries": padded(F.transform("query_items", item), 0),
            "query_labels": padded(F.transform("query_label_list", lambda y: y.cast("float")),
                                   0.0),
            "query_weights": padded(
                F.transform("query_label_list", lambda y: F.when(y == 1, positive)
                            .otherwise(negative).cast("float")), 0.0),
        }
    )  # fmt: skip


def vocab_of(index: dict[str, int]) -> Vocab:
    items = OTHER + len(index)
    return Vocab(items, (len(FUNNEL) + 1) * COUNT_BUCKETS, np.zeros(items + 1, np.int32))


def build_classifier(vocab: Vocab, p: HeadParams, queries: int = 0) -> Any:
    """Keras model ``{"items", "types", "ages"}`` (B, T <= max_len) → (B, 1) logits: the
    encoder's state at the last position through one dense unit. With ``queries > 0`` the
    inputs also hold ``"queries"`` (B, queries) and the output is (B, queries, 1), one logit
    per query item (see the module). With ``p.next_item_weight > 0`` training adds the
    encoder's own next-item loss (:func:`next_item_loss`) times that weight to the head's
    (multi-task); validation and scoring are the head's alone."""
    import tensorflow as tf

    layers = tf.keras.layers
    encoder = sasrec.build_model(vocab, p.encoder(), ages=AGE_BUCKETS)

    class Head(tf.keras.Model):
        def __init__(self, name: str) -> None:
            super().__init__(name=name)
            self.encoder = encoder
            # not an attribute Keras tracks: its variables stay out of get_weights()
            object.__setattr__(self, "next_item", tf.keras.metrics.Mean(name="next_item_loss"))

        def read(self, inputs: Any, h: Any, training: bool | None) -> Any:
            raise NotImplementedError

        def call(self, inputs: Any, training: bool | None = None) -> Any:
            return self.read(inputs, self.encoder.encode(inputs, training=training), training)

        @property
        def metrics(self) -> list[Any]:
            extra = [self.next_item] if p.next_item_weight else []
            return [*super().metrics, *extra]

        def train_step(self, data: Any) -> Any:
            if not p.next_item_weight:
                return super().train_step(data)
            x, y, sw = tf.keras.utils.unpack_x_y_sample_weight(data)
            with tf.GradientTape() as tape:
                h = self.encoder.encode(x, training=True)
                out = self.read(x, h, training=True)
                nxt = next_item_loss(self.encoder, h, x["items"])
                loss = self.compute_loss(x, y, out, sw) + p.next_item_weight * nxt
            # a LossScaleOptimizer (mixed_float16) scales the loss inside minimize
            self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
            self.next_item.update_state(nxt)
            return self.compute_metrics(x, y, out, sw)

        def test_step(self, data: Any) -> Any:
            if not p.next_item_weight:
                return super().test_step(data)
            x, y, sw = tf.keras.utils.unpack_x_y_sample_weight(data)
            h = self.encoder.encode(x, training=False)
            out = self.read(x, h, training=False)
            self.compute_loss(x, y, out, sw)
            self.next_item.update_state(next_item_loss(self.encoder, h, x["items"]))
            return self.compute_metrics(x, y, out, sw)

    class SequenceHead(Head):
        def __init__(self) -> None:
            super().__init__("sequence_head")
            # float32 under a mixed-precision policy too: the loss needs float32 logits
            self.logit = layers.Dense(1, name="logit", dtype="float32")

        def read(self, inputs: Any, h: Any, training: bool | None) -> Any:
            return self.logit(h[:, -1, :])

    class QueryHead(Head):
        def __init__(self) -> None:
            super().__init__("sequence_query_head")
            self.cross = layers.MultiHeadAttention(
                p.heads, p.dim // p.heads, dropout=p.dropout, name="item_query"
            )
            self.mix = layers.Dense(p.dim, activation="relu", name="mix")
            self.drop = layers.Dropout(p.dropout)
            self.logit = layers.Dense(1, name="logit", dtype="float32")

        def read(self, inputs: Any, h: Any, training: bool | None) -> Any:
            q = self.encoder.item_emb(inputs["queries"]) * math.sqrt(p.dim)  # (B, K, d)
            shape = tf.shape(inputs["queries"])
            valid = tf.broadcast_to((inputs["items"] > 0)[:, None, :],
                                    [shape[0], shape[1], tf.shape(h)[1]])  # fmt: skip
            seen = self.cross(q, h, attention_mask=valid, training=training)
            last = tf.broadcast_to(h[:, -1:, :], tf.shape(q))
            z = tf.concat([q, seen, q * seen, last, q * last], axis=-1)
            return self.logit(self.drop(self.mix(z), training=training))

    x = sasrec.dummy(p.max_len, ages=True)
    if queries:
        model: Any = QueryHead()
        x["queries"] = np.zeros((1, queries), np.int32)
    else:
        model = SequenceHead()
    model(x, training=False)  # create the weights
    return model


def next_item_loss(encoder: Any, h: Any, items: Any) -> Any:
    """The SASRec objective on the head's own inputs: the encoder's state at each step
    (causal: it has seen that step and the ones before) scores every item of the vocabulary
    against the next step's item; mean softmax cross-entropy over the steps whose next step
    is not padding (float32 whatever the policy)."""
    import tensorflow as tf

    table = tf.cast(encoder.item_emb.embeddings, tf.float32)
    logits = tf.einsum("btd,nd->btn", tf.cast(h[:, :-1, :], tf.float32), table)
    logits = logits + tf.one_hot(0, tf.shape(table)[0], on_value=-1e9, off_value=0.0)
    target = items[:, 1:]
    mask = tf.cast(tf.logical_and(target > 0, items[:, :-1] > 0), tf.float32)
    per = tf.nn.sparse_softmax_cross_entropy_with_logits(target, logits)
    return tf.reduce_sum(per * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def probabilities(model: Any, x: dict[str, np.ndarray], rows: int = 4096) -> np.ndarray:
    """Sigmoid of the head's logits, in batches: (rows,), or (rows, queries) with query
    items; history columns that are padding in a whole batch are dropped first (the encoder
    masks padding, so the result is the same)."""
    out = []
    for start in range(0, len(x["items"]), rows):
        batch = {k: v[start : start + rows] for k, v in x.items()}
        used = np.flatnonzero((batch["items"] > 0).any(axis=0))
        first = int(used[0]) if len(used) else batch["items"].shape[1] - 1
        trimmed = {k: np.ascontiguousarray(v[:, first:] if k in ARRAYS else v)
                   for k, v in batch.items()}  # fmt: skip
        out.append(np.asarray(model(trimmed, training=False), np.float64)[..., 0])
    logits = np.concatenate(out) if out else np.zeros(0)
    return 1.0 / (1.0 + np.exp(-logits))


def score_column(
    spark: SparkSession, df: DataFrame, index: dict[str, int], p: HeadParams,
    weights: list[np.ndarray], rows: int = 4096, queries: int = 0,
) -> DataFrame:  # fmt: skip
    """``df`` (with the ``items``, ``types``, ``ages`` arrays of :func:`with_arrays`, built
    with ``index``) plus ``score``, the head's probability, computed on the executors: the
    weights are broadcast once, the model is built once per Python worker and scores Arrow
    batches through ``mapInPandas`` (nothing but the scores reaches the driver). With
    ``queries > 0`` ``df`` also holds the ``queries`` array of :func:`with_queries` and the
    new column is ``scores``, one probability per query slot (padding slots included)."""
    from pyspark.sql.types import ArrayType, DoubleType, StructField, StructType

    payload = spark.sparkContext.broadcast((dict(index), p, weights))
    key = f"head-{id(weights)}-{time.time_ns()}"
    out = (
        StructField("scores", ArrayType(DoubleType()), True)
        if queries
        else StructField("score", DoubleType(), True)
    )
    schema = StructType([*df.schema.fields, out])
    widths = {c: p.max_len for c in ARRAYS} | ({"queries": queries} if queries else {})

    def score(batches: Any) -> Any:
        def build() -> Any:
            item_index_, params, values = payload.value
            model = build_classifier(vocab_of(item_index_), params, queries)
            model.set_weights(values)
            return model

        model = worker_model(key, build)
        for pdf in batches:
            if len(pdf) == 0:
                continue
            x = {
                c: np.stack(pdf[c].to_numpy()).astype(np.int32).reshape(len(pdf), width)
                for c, width in widths.items()
            }
            prob = probabilities(model, x, rows)
            pdf[out.name] = list(prob) if queries else prob
            yield pdf

    return df.mapInPandas(score, schema)


def task(vocab: Vocab, p: HeadParams, queries: int = 0) -> runner.KerasTask:
    """The head's part of the shared Horovod fit: rows of wide ``items_i``, ``types_i``,
    ``ages_i`` columns, ``label`` and ``weight`` (with ``queries > 0``: wide ``queries_i``,
    ``query_labels_i`` and ``query_weights_i`` instead of the last two: the loss and the
    ROC-AUC are over the query slots, padding at weight 0); early stopping on the validation
    ROC-AUC (the best epoch's weights are kept), like the DNN."""
    length = p.max_len

    def build() -> tuple[Any, None]:
        return build_classifier(vocab, p, queries), None

    def compile_args() -> dict[str, Any]:
        import tensorflow as tf

        auc = [tf.keras.metrics.AUC(name="auc", from_logits=True)]
        # with query items the AUC must see the weights: padding slots (weight 0) are not
        # negatives (class-constant weights leave a ROC-AUC as it is)
        return {
            "loss": tf.keras.losses.BinaryCrossentropy(from_logits=True),
            **({"weighted_metrics": auc} if queries else {"metrics": auc}),
        }

    def callbacks(rank: int) -> list[Any]:
        import tensorflow as tf

        # the metric is averaged over the ranks first, so every rank stops at the same epoch
        return [
            tf.keras.callbacks.EarlyStopping(
                monitor="val_auc", mode="max", patience=p.patience, restore_best_weights=True
            )
        ]

    def inputs() -> Any:
        import tensorflow as tf

        names = {c: petastorm_io.wide_names(c, length) for c in ARRAYS}
        if queries:
            names["queries"] = petastorm_io.wide_names("queries", queries)
        targets = {c: petastorm_io.wide_names(c, queries) for c in QUERY_ARRAYS[1:]}

        @tf.autograph.experimental.do_not_convert
        def to_inputs(batch: Any) -> tuple[dict[str, Any], Any, Any]:
            x = {c: tf.cast(petastorm_io.stack(batch, n), tf.int32) for c, n in names.items()}
            if queries:  # (B, K, 1): one loss term per query slot, weighted
                y, w = (tf.cast(petastorm_io.stack(batch, n), tf.float32)[:, :, None]
                        for n in targets.values())  # fmt: skip
                return x, y, w
            y = tf.reshape(tf.cast(batch.label, tf.float32), (-1, 1))
            return x, y, tf.cast(batch.weight, tf.float32)

        return to_inputs

    def result(model: Any, parts: None) -> list[np.ndarray]:
        return [np.asarray(w) for w in model.get_weights()]

    return runner.KerasTask(build, compile_args, inputs, result, callbacks)


@dataclass
class FittedHead:
    """Raw probabilities per split (``(label, p)`` in (cutoff, user_id) order, the order of
    ``churn.train.collect_scores``; ``users`` and ``cutoffs``: the rows' keys in that order),
    the weights and the vocabulary. With query items the scores are per query, in the order
    of their ids (``ids``), and ``users``/``cutoffs`` are empty."""

    scores: dict[str, tuple[np.ndarray, np.ndarray]]
    users: dict[str, np.ndarray]
    weights: list[np.ndarray]
    item_ids: list[str]
    history: dict[str, list[float]]
    seconds: float
    rows_without_events: dict[str, int]
    cutoffs: dict[str, np.ndarray] = field(default_factory=dict)
    ids: dict[str, np.ndarray] = field(default_factory=dict)


QUERY_COLUMNS = ("query_ids", "query_items", "query_label_list")


def fit_score(
    spark: SparkSession,
    events: DataFrame,
    rows: DataFrame,
    p: HeadParams,
    cache_dir: str,
    pos_rate: float,
    splits: Sequence[str],
    queries: int = 0,
) -> FittedHead:
    """Fit on ``rows``' train split (validation for Keras' metrics) and score ``splits``.

    ``rows``: (user_id, cutoff, split, label) labelled rows; ``events``: the events table
    (each row reads only its user's events up to the end of its cutoff day). The histories and
    the model's arrays are built on the executors and reach Horovod through Petastorm; the
    rows of ``splits`` are scored there too (:func:`score_column`): only the item index and
    the scores are collected.

    With ``queries > 0`` a row holds query items instead of a label: ``query_ids`` (unique
    keys), ``query_items`` and ``query_label_list`` (0/1), arrays of at most ``queries``;
    ``pos_rate`` is then the training queries' positive rate and every query gets a score."""
    if not 0.0 < pos_rate < 1.0:  # the class weights 0.5 / rate and 0.5 / (1 - rate)
        raise InputError(
            f"sequence head: the training rows' positive rate is {pos_rate}: every training "
            "row has the same label, so there is nothing to learn; rebuild the training set "
            "with another --as-of/--test-start or more data"
        )
    keyed = rows.select("user_id", "cutoff", "split", *(QUERY_COLUMNS if queries else ["label"]))
    if queries:
        longest = keyed.agg(F.max(F.size("query_ids")).alias("n")).first()
        if longest is not None and (longest.n or 0) > queries:
            raise InputError(
                f"sequence head: a row holds {longest.n} query items, more than the "
                f"{queries} the head takes: split such rows"
            )
    labelled = keyed.join(
        histories(events, keyed, p.max_len, p.step), ["user_id", "cutoff"], "left"
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        item_columns = ("item_ids", "query_items") if queries else ("item_ids",)
        index = item_index(labelled.where(F.col("split") == "train"), p.max_items, item_columns)
        vocab = vocab_of(index)
        x = with_arrays(labelled, index, p.max_len)
        class_weights = (0.5 / (1.0 - pos_rate), 0.5 / pos_rate)
        widths = {c: p.max_len for c in ARRAYS}
        if queries:
            x = with_queries(x, index, queries, class_weights)
            targets: list[str | Column] = list(QUERY_ARRAYS)
            widths |= dict.fromkeys(QUERY_ARRAYS, queries)
        else:
            weight = F.when(F.col("label") == 1, class_weights[1]).otherwise(class_weights[0])
            targets = [F.col("label").cast("float"), weight.cast("float").alias("weight")]

        def frame(split: str) -> DataFrame:
            return x.where(F.col("split") == split).select(*ARRAYS, *targets)

        started = time.monotonic()
        fitted = runner.fit(
            spark, frame("train"), widths, task(vocab, p, queries), p.distributed(), cache_dir,
            validation=frame(splits[0]), what="sequence head",
        )  # fmt: skip
        scores, users, cutoffs, ids = {}, {}, {}, {}
        for s in splits:
            of_split = x.where(F.col("split") == s)
            if queries:
                per_query = F.explode(F.arrays_zip("query_ids", "query_label_list", "scores"))
                part: pd.DataFrame = (
                    score_column(spark, of_split.select(*QUERY_COLUMNS, *ARRAYS, "queries"),
                                 index, p, fitted.value, queries=queries)
                    .withColumn("scores", F.slice("scores", 1, F.size("query_ids")))
                    .select(per_query.alias("q"))
                    .select(F.col("q.query_ids").alias("id"),
                            F.col("q.query_label_list").alias("label"),
                            F.col("q.scores").alias("score"))
                    .orderBy("id")
                    .toPandas()
                )  # fmt: skip
                ids[s] = part["id"].to_numpy(dtype=object)
            else:
                part = (
                    score_column(spark, of_split.select("user_id", "cutoff", "label", *ARRAYS),
                                 index, p, fitted.value)
                    .select("user_id", "cutoff", "label", "score")
                    .orderBy("cutoff", "user_id")
                    .toPandas()
                )  # fmt: skip
                users[s] = part["user_id"].to_numpy(dtype=object)
                cutoffs[s] = part["cutoff"].to_numpy(dtype=object)
            scores[s] = (part["label"].to_numpy(dtype=int), part["score"].to_numpy(dtype=float))
        counts = labelled.groupBy("split").agg(
            F.sum(F.col("item_ids").isNull().cast("int")).alias("n")
        )
        empty = dict.fromkeys(("train", *splits), 0)
        empty.update({r.split: int(r.n) for r in counts.collect() if r.split in empty})
    finally:
        labelled.unpersist()
    item_ids = sorted(index, key=index.__getitem__)
    took = time.monotonic() - started
    return FittedHead(
        scores, users, fitted.value, item_ids, fitted.history, took, empty, cutoffs, ids
    )
