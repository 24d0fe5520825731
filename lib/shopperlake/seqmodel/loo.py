"""Leave-one-out data for the sequence models, from ``gold.user_sequences``, on Spark.

**Item steps.** A user's sequence of item events becomes the sequence of the distinct items in
the order the user first met them (each with the event type and category of that first
event): a view, click, cart and purchase of one item are one step. The event order inside
``gold.user_sequences`` already follows the documented tie rule (time, funnel order, event
id), so the steps are deterministic too.

**Leave one out.** With steps ``s_1 .. s_n`` (n >= 3): the test target is ``s_n`` with history
``s_1 .. s_{n-1}``; the validation target is ``s_{n-1}`` with history ``s_1 .. s_{n-2}``;
training sees ``s_1 .. s_{n-2}`` only (as inputs ``s_1 .. s_{m-1}`` and next-item targets
``s_2 .. s_m``). Targets are never in their own history (the steps are distinct), so
removing seen items never removes the answer. Ranking is over the full catalogue.

Arrays sent to the model keep the latest ``max_len`` steps, left-padded with 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from shopperlake.seqmodel.build import FUNNEL
from shopperlake.seqmodel.sasrec import Vocab

MIN_STEPS = 3


def item_steps(
    sequences: DataFrame, min_steps: int = MIN_STEPS, distinct: bool = True
) -> DataFrame:
    """(user_id, item_ids, event_types, categories, n): first occurrences, in order, of users
    with at least ``min_steps`` distinct items; ``distinct=False``: every event is a step
    (repeats kept: a re-order is a step of its own, for next-basket data)."""
    zipped = "arrays_zip(item_ids, event_types, categories)"
    first = F.expr(
        f"filter({zipped}, (x, i) -> array_position(item_ids, x.item_ids) = i + 1)"
        if distinct
        else zipped
    )
    steps = sequences.select("user_id", first.alias("s"))
    return steps.select(
        "user_id",
        F.col("s.item_ids").alias("item_ids"),
        F.col("s.event_types").alias("event_types"),
        F.col("s.categories").alias("categories"),
        F.size("s").alias("n"),
    ).where(F.col("n") >= min_steps)


@dataclass
class Indexed:
    """Steps as indices (``items``, ``types``: array<int>, item index 1..N in item-id order,
    type index = funnel position + 1) and the vocabulary."""

    rows: DataFrame  # user_id, items, types, n
    item_ids: list[str]  # index i + 1 → item_ids[i]
    vocab: Vocab


def index_steps(spark: SparkSession, steps: DataFrame) -> Indexed:
    exploded = steps.select("user_id", F.posexplode(F.arrays_zip(
        F.col("item_ids").alias("item"), F.col("event_types").alias("type"),
        F.col("categories").alias("category"))).alias("pos", "s"))  # fmt: skip
    flat = exploded.select(
        "user_id", "pos", F.col("s.item").alias("item_id"), F.col("s.type").alias("event_type"),
        F.col("s.category").alias("category"),
    )  # fmt: skip
    per_item = (
        flat.groupBy("item_id")
        .agg(F.min(F.when(F.col("category").isNotNull(), F.col("category"))).alias("category"))
        .orderBy("item_id")
        .collect()
    )
    item_ids = [str(r["item_id"]) for r in per_item]
    categories = sorted({r["category"] for r in per_item if r["category"] is not None})
    cat_idx = {c: i + 1 for i, c in enumerate(categories)}
    item_category = np.zeros(len(item_ids) + 1, np.int32)
    for i, r in enumerate(per_item, start=1):
        item_category[i] = cat_idx.get(r["category"], 0)
    index = spark.createDataFrame(
        [(v, i + 1) for i, v in enumerate(item_ids)], "item_id STRING, idx INT"
    )
    type_idx = F.lit(0)
    for i, name in reversed(list(enumerate(FUNNEL))):
        type_idx = F.when(F.col("event_type") == name, F.lit(i + 1)).otherwise(type_idx)
    grouped = (
        flat.join(F.broadcast(index), "item_id")
        .groupBy("user_id")
        .agg(F.sort_array(F.collect_list(F.struct("pos", "idx", type_idx.alias("t")))).alias("l"))
    )
    rows = grouped.select(
        "user_id", F.col("l.idx").alias("items"), F.col("l.t").alias("types"),
        F.size("l").alias("n"),
    )  # fmt: skip
    return Indexed(rows, item_ids, Vocab(len(item_ids), len(FUNNEL), item_category))


def head(col: str, drop_last: int) -> Column:
    """The array ``col`` without its last ``drop_last`` elements."""
    return F.expr(f"slice({col}, 1, greatest(size({col}) - {drop_last}, 0))")


def left_padded(arr: Column, length: int) -> Column:
    """The last ``length`` elements of ``arr``, left-padded with 0 to exactly ``length``."""
    size = F.size(arr)
    tail = F.when(size > length, F.slice(arr, -length, length)).otherwise(arr)
    return F.concat(F.array_repeat(F.lit(0), F.lit(length) - F.size(tail)), tail)


def training_rows(indexed: DataFrame, max_len: int, held_out: int = 2) -> DataFrame:
    """(user_id, items, types, targets) over ``s_1 .. s_m``, ``m = n - held_out`` (2 for
    leave-one-out: validation and test; 0 when every step is training data): inputs
    ``s_1 .. s_{m-1}``, targets ``s_2 .. s_m`` (users with m >= 2 only), left-padded to
    ``max_len``."""
    train = indexed.select(
        "user_id", head("items", held_out).alias("s"), head("types", held_out).alias("t")
    ).where(F.size("s") >= 2)
    return train.select(
        "user_id",
        left_padded(head("s", 1), max_len).alias("items"),
        left_padded(head("t", 1), max_len).alias("types"),
        left_padded(F.expr("slice(s, 2, size(s) - 1)"), max_len).alias("targets"),
    )


def target_counts(train: DataFrame, n_items: int) -> np.ndarray:
    """(n_items + 1,) how often each item index is a target in ``train`` (rows of
    :func:`training_rows`; padding 0 not counted): the sampled softmax's proposal."""
    rows = (
        train.select(F.explode("targets").alias("t"))
        .where(F.col("t") > 0)
        .groupBy("t")
        .count()
        .collect()
    )
    out = np.zeros(n_items + 1, np.int64)
    for r in rows:
        out[int(r["t"])] = int(r["count"])
    return out


def evaluation_rows(indexed: DataFrame, split: str, max_len: int) -> DataFrame:
    """(user_id, split, items, types, seen, target): the history left-padded to ``max_len``
    for the model, every history item (``seen``, for EASE and for removing seen items) and
    the target, for ``split`` test (last step) or validation (the one before)."""
    drop = {"test": 1, "validation": 2}[split]
    return indexed.select(
        "user_id",
        F.lit(split).alias("split"),
        left_padded(head("items", drop), max_len).alias("items"),
        left_padded(head("types", drop), max_len).alias("types"),
        head("items", drop).alias("seen"),
        F.element_at("items", -drop).alias("target"),
    )


def interactions(indexed: DataFrame) -> DataFrame:
    """(user_id, item_id) pairs of the training steps ``s_1 .. s_{n-2}`` (item index as a
    string id, for EASE's Gram matrix)."""
    return indexed.select("user_id", F.explode(head("items", 2)).alias("idx")).select(
        "user_id", F.col("idx").cast("string").alias("item_id")
    )
