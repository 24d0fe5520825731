"""Deep two-tower retrieval (TensorFlow), trained with Horovod on Spark executors, fed by Petastorm.

User tower: user-id embedding, the mean embedding of the user's ``recent_items`` heaviest items
(the time-decayed interaction weight ranks them: recent and frequent first), the share-weighted
embedding of the user's top ``user_categories`` categories (``affinities``) and the user's
price band. Item tower: item-id embedding (shared with the history), category embedding
(shared with the user's categories) and the item's price band (price over its category
median). Both end in a dense layer and an L2 normalisation; the score is their dot product.

Training: one row per positive (user, item) pair, fitted by the shared Horovod runner
(:mod:`shopperlake.training.runner`: Petastorm shards, ``num_proc`` processes). Loss: sampled
softmax over the other positives of the batch (in-batch negatives) plus ``negatives`` uniformly
drawn items per batch, each logit corrected by the log of its sampling probability (logQ),
accidental hits (the positive item drawn again) masked, weighted by ``log1p(weight)``. The
target item is removed from its own history row (leave-one-out), so the model cannot learn
identity.

Retrieval: item embeddings computed once on the driver (items × dim) and broadcast in blocks of
``block_items``; user embeddings computed per Arrow batch inside ``mapInPandas`` (user tower
weights broadcast, the model built once per Python worker); the top ``n`` per user is merged
across blocks in the worker. User embeddings never reach the driver.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.broadcast import Broadcast
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

from shopperlake.core.config import section_dataclass
from shopperlake.core.errors import ConfigError
from shopperlake.rec.content import price_band
from shopperlake.training import petastorm_io, runner
from shopperlake.training.runner import TrainingError

log = logging.getLogger(__name__)
SCORED = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("item_id", StringType(), False),
        StructField("score", DoubleType(), False),
    ]
)
N_BANDS = 4  # 0 unknown, 1 low, 2 mid, 3 high
CATEGORY_DIM = 16
BAND_DIM = 4


@dataclass(frozen=True)
class TwoTowerParams:
    """``recommender.twotower`` of the config."""

    dim: int = 32  # embedding size of both towers' outputs
    hidden: int = 64  # one ReLU layer of this width per tower (0: none)
    epochs: int = 5
    batch_size: int = 256  # per Horovod process
    negatives: int = 64  # uniform negatives per batch, on top of the in-batch ones
    learning_rate: float = 0.002  # scaled by the number of processes
    temperature: float = 0.1  # softmax temperature of the cosine scores
    recent_items: int = 20  # history length of the user tower
    user_categories: int = 4  # top categories by affinity share in the user tower
    num_proc: int = 2
    seed: int = 7
    block_items: int = 4096  # items per broadcast block at retrieval
    user_id: bool = False  # add a user-id embedding to the user tower (memorises on small data)

    @classmethod
    def from_dict(cls, section: dict[str, Any]) -> TwoTowerParams:
        params: TwoTowerParams = section_dataclass(cls, section, "recommender.twotower")
        params.validate()
        return params

    def validate(self) -> None:
        checks = [
            (self.dim >= 1 and self.hidden >= 0, "dim must be >= 1 and hidden >= 0"),
            (self.epochs >= 1 and self.batch_size >= 2, "epochs >= 1 and batch_size >= 2"),
            (self.negatives >= 0 and self.recent_items >= 1, "negatives >= 0, recent_items >= 1"),
            (self.user_categories >= 1 and self.num_proc >= 1, "user_categories, num_proc >= 1"),
            (self.learning_rate > 0 and self.temperature > 0, "learning_rate, temperature > 0"),
            (self.block_items >= 1, "block_items must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"recommender.twotower: {message}")


@dataclass(frozen=True)
class Sizes:
    users: int  # indices 1..users; 0 = unknown user
    items: int  # indices 1..items; 0 = padding
    categories: int  # indices 1..categories; 0 = unknown / padding


@dataclass
class TwoTower:
    """A fitted two-tower model: vocabularies, item attributes, tower weights, user features."""

    params: TwoTowerParams
    sizes: Sizes
    item_ids: list[str]  # item index i+1 → item_ids[i]
    categories: list[str]  # category index c+1 → categories[c]
    item_category: np.ndarray  # (items + 1,) int32 category index per item index
    item_band: np.ndarray  # (items + 1,) int32 price band per item index
    profiles: DataFrame  # (user_id, user_idx, hist, cats, shares, band): the training users
    user_weights: list[np.ndarray]
    item_weights: list[np.ndarray]
    history: dict[str, list[float]]
    seconds: float
    train_rows: int

    def towers(self) -> tuple[Any, Any]:
        """The Keras (user tower, item tower) with the trained weights."""
        user, item = build_towers(self.sizes, self.params)
        user.set_weights(self.user_weights)
        item.set_weights(self.item_weights)
        return user, item

    def item_embeddings(self) -> np.ndarray:
        """(items, dim) float32, row ``i`` for item index ``i + 1``."""
        _, tower = self.towers()
        idx = np.arange(1, self.sizes.items + 1, dtype=np.int32)
        out = tower([idx, self.item_category[idx], self.item_band[idx]], training=False)
        return np.asarray(out, dtype=np.float32)

    def user_inputs(self, users: DataFrame) -> DataFrame:
        """``users`` (user_id, ...) with padded tower inputs; users unseen in training get index
        0, an empty history and whatever categories their affinities carried at fit time."""
        return padded(users.select("user_id").distinct().join(self.profiles, "user_id", "left"),
                      self.params)  # fmt: skip


# -- features ------------------------------------------------------------------------------------
def _band_index(band: Column) -> Column:
    return (
        F.when(band == "low", F.lit(1))
        .when(band == "mid", F.lit(2))
        .when(band == "high", F.lit(3))
        .otherwise(F.lit(0))
    )


def _pad(col: Column, width: int, zero: Any) -> Column:
    filled = F.coalesce(
        col, F.array().cast(f"array<{'float' if isinstance(zero, float) else 'int'}>")
    )
    return F.concat(filled, F.array_repeat(F.lit(zero), F.lit(width) - F.size(filled)))


def padded(df: DataFrame, params: TwoTowerParams) -> DataFrame:
    """Fill the tower inputs of users without features: index 0, zero-padded arrays."""
    m, c = params.recent_items, params.user_categories
    return df.withColumns(
        {
            "user_idx": F.coalesce(F.col("user_idx"), F.lit(0)).cast("int"),
            "hist": _pad(F.col("hist"), m, 0),
            "cats": _pad(F.col("cats"), c, 0),
            "shares": _pad(F.col("shares"), c, 0.0),
            "band": F.coalesce(F.col("band"), F.lit(0)).cast("int"),
        }
    )


def _top_list(df: DataFrame, key: str, order: Column, width: int, values: list[str]) -> DataFrame:
    """Per ``key``, the ``values`` columns of its first ``width`` rows by ``order``, as arrays
    in that order."""
    w = Window.partitionBy(key).orderBy(order, F.col(values[0]))
    ranked = df.withColumn("_r", F.row_number().over(w)).where(F.col("_r") <= width)
    agg = ranked.groupBy(key).agg(F.sort_array(F.collect_list(F.struct("_r", *values))).alias("_l"))
    return agg.select(key, *[F.col("_l")[v].alias(v) for v in values])


def _index(spark: SparkSession, values: list[str], name: str, idx: str) -> DataFrame:
    rows = [(v, i + 1) for i, v in enumerate(values)]
    return spark.createDataFrame(rows, f"{name} STRING, {idx} INT")


def item_attributes(
    interactions: DataFrame, catalog: DataFrame
) -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(item ids, categories, category index, price band, pair count) of the interacted items,
    in item-index order (index 0 = padding). Missing categories become ``unknown``."""
    cat = catalog.select(
        "item_id",
        F.coalesce(F.col("category").cast("string"), F.lit("unknown")).alias("category"),
        F.col("price").cast("double").alias("price"),
    ).dropDuplicates(["item_id"])
    median = cat.groupBy("category").agg(F.percentile_approx("price", 0.5).alias("_median"))
    banded = cat.join(median, "category", "left").select(
        "item_id",
        "category",
        _band_index(price_band(F.col("price") / F.col("_median"))).alias("band"),
    )
    counts = interactions.groupBy("item_id").agg(F.count(F.lit(1)).alias("n"))
    rows = counts.join(banded, "item_id", "left").orderBy("item_id").collect()
    item_ids = [str(r["item_id"]) for r in rows]
    names = [r["category"] if r["category"] is not None else "unknown" for r in rows]
    categories = sorted(set(names))
    cat_idx = {c: i + 1 for i, c in enumerate(categories)}
    item_category = np.zeros(len(rows) + 1, dtype=np.int32)
    item_band = np.zeros(len(rows) + 1, dtype=np.int32)
    count = np.zeros(len(rows) + 1, dtype=np.float64)
    for i, r in enumerate(rows, start=1):
        item_category[i] = cat_idx[names[i - 1]]
        item_band[i] = int(r["band"] or 0)
        count[i] = float(r["n"])
    return item_ids, categories, item_category, item_band, count


def user_profiles(
    spark: SparkSession,
    interactions: DataFrame,
    affinities: DataFrame,
    items: DataFrame,
    categories: list[str],
    params: TwoTowerParams,
) -> DataFrame:
    """(user_id, user_idx, hist, cats, shares, band) for every user with interactions or
    affinities (users with affinities only get index 0: no id embedding was trained for them).

    ``hist``: the item indices of the user's ``recent_items`` heaviest items; ``cats`` /
    ``shares``: the user's top ``user_categories`` categories by share; ``band``: price band."""
    users = interactions.select("user_id").distinct()
    user_idx = spark.createDataFrame(
        users.orderBy("user_id").rdd.zipWithIndex().map(lambda r: (r[0][0], int(r[1]) + 1)),
        "user_id STRING, user_idx INT",
    )
    hist = _top_list(
        interactions.join(F.broadcast(items), "item_id"),
        "user_id",
        F.col("weight").desc(),
        params.recent_items,
        ["item_idx"],
    ).withColumnRenamed("item_idx", "hist")
    cat_index = _index(spark, categories, "category", "cat_idx")
    aff = affinities.select(
        "user_id",
        F.coalesce(F.col("category").cast("string"), F.lit("unknown")).alias("category"),
        F.col("share").cast("float").alias("share"),
        _band_index(F.col("user_band")).alias("band"),
    )
    cats = _top_list(
        aff.join(F.broadcast(cat_index), "category", "left").withColumn(
            "cat_idx", F.coalesce(F.col("cat_idx"), F.lit(0))
        ),
        "user_id",
        F.col("share").desc(),
        params.user_categories,
        ["cat_idx", "share"],
    ).select("user_id", F.col("cat_idx").alias("cats"), F.col("share").alias("shares"))
    band = aff.groupBy("user_id").agg(F.max("band").alias("band"))
    return (
        user_idx.join(hist, "user_id", "full")
        .join(cats, "user_id", "full")
        .join(band, "user_id", "full")
        .select("user_id", "user_idx", "hist", "cats", "shares", "band")
    )


# -- model ---------------------------------------------------------------------------------------
def build_towers(sizes: Sizes, params: TwoTowerParams) -> tuple[Any, Any]:
    """(user tower, item tower) as Keras functional models sharing the item-id and category
    embeddings. User inputs: user_idx (B,), hist (B, M), cats (B, C), shares (B, C), band (B,);
    item inputs: item_idx, category, band (B,). Outputs: L2-normalised (B, dim)."""
    import tensorflow as tf

    layers = tf.keras.layers
    m, c, d = params.recent_items, params.user_categories, params.dim
    item_emb = layers.Embedding(sizes.items + 1, d, name="item_embedding")
    cat_emb = layers.Embedding(sizes.categories + 1, CATEGORY_DIM, name="category_embedding")

    def head(x: Any, side: str) -> Any:
        if params.hidden > 0:
            x = layers.Dense(params.hidden, activation="relu", name=f"{side}_hidden")(x)
        x = layers.Dense(d, name=f"{side}_out")(x)
        return layers.UnitNormalization(name=f"{side}_norm")(x)

    uid = layers.Input(shape=(), dtype="int32", name="user_idx")
    hist = layers.Input(shape=(m,), dtype="int32", name="hist")
    cats = layers.Input(shape=(c,), dtype="int32", name="cats")
    shares = layers.Input(shape=(c,), dtype="float32", name="shares")
    uband = layers.Input(shape=(), dtype="int32", name="user_band")
    mask = tf.expand_dims(tf.cast(hist > 0, "float32"), -1)
    hist_mean = tf.reduce_sum(item_emb(hist) * mask, axis=1) / tf.maximum(
        tf.reduce_sum(mask, axis=1), 1.0
    )
    cat_mix = tf.reduce_sum(cat_emb(cats) * tf.expand_dims(shares, -1), axis=1)
    band_emb = layers.Embedding(N_BANDS, BAND_DIM, name="user_band_embedding")
    parts = [hist_mean, cat_mix, band_emb(uband)]
    if params.user_id:
        parts.append(layers.Embedding(sizes.users + 1, d, name="user_embedding")(uid))
    user_x = layers.Concatenate()(parts)
    user = tf.keras.Model([uid, hist, cats, shares, uband], head(user_x, "user"), name="user")

    iid = layers.Input(shape=(), dtype="int32", name="item_idx")
    icat = layers.Input(shape=(), dtype="int32", name="category")
    iband = layers.Input(shape=(), dtype="int32", name="item_band")
    item_x = layers.Concatenate()(
        [
            item_emb(iid),
            cat_emb(icat),
            layers.Embedding(N_BANDS, BAND_DIM, name="item_band_embedding")(iband),
        ]
    )
    item = tf.keras.Model([iid, icat, iband], head(item_x, "item"), name="item")
    return user, item


def training_model(
    user: Any, item: Any, item_category: np.ndarray, item_band: np.ndarray, log_q: np.ndarray,
    params: TwoTowerParams,
) -> Any:  # fmt: skip
    """A Keras model whose output for a batch of B positives is the (B, B + negatives) logit
    matrix of sampled softmax: column j < B is the positive of row j (in-batch negatives),
    the rest uniform draws; label of row i is i. ``log_q``: log pair share per item index."""
    import tensorflow as tf

    n_items = len(item_category) - 1
    k = params.negatives

    class TwoTowerTrainer(tf.keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.user, self.item = user, item
            self.cat_table = tf.constant(item_category, dtype=tf.int32)
            self.band_table = tf.constant(item_band, dtype=tf.int32)
            self.log_q = tf.constant(log_q, dtype=tf.float32)

        def call(self, inputs: Any, training: bool | None = None) -> Any:
            u = self.user(
                [
                    inputs["user_idx"],
                    inputs["hist"],
                    inputs["cats"],
                    inputs["shares"],
                    inputs["band"],
                ],
                training=training,
            )
            pos = inputs["item_idx"]
            b = tf.shape(pos)[0]
            cand = pos
            correction = tf.gather(self.log_q, pos) + tf.math.log(tf.cast(b, tf.float32))
            if k > 0:
                neg = tf.random.uniform((k,), 1, n_items + 1, dtype=tf.int32)
                cand = tf.concat([pos, neg], 0)
                correction = tf.concat([correction, tf.fill((k,), math.log(k / n_items))], 0)
            v = self.item(
                [cand, tf.gather(self.cat_table, cand), tf.gather(self.band_table, cand)],
                training=training,
            )
            logits = tf.matmul(u, v, transpose_b=True) / params.temperature - correction[None, :]
            own = tf.pad(tf.eye(b, dtype=tf.bool), [[0, 0], [0, k]])
            hit = tf.logical_and(tf.equal(pos[:, None], cand[None, :]), tf.logical_not(own))
            return tf.where(hit, tf.constant(-1e9, tf.float32), logits)

    return TwoTowerTrainer()


# -- fit -----------------------------------------------------------------------------------------
def resolve_cache_dir(spark: SparkSession, cache_dir: str | None) -> str:
    """``cache_dir``, else the Petastorm cache already set on the session (the recommender jobs
    set it from ``training.cache`` or ``<lake>/_petastorm_cache``)."""
    from petastorm.spark import SparkDatasetConverter

    if cache_dir:
        return cache_dir
    current = spark.conf.get(SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF, None)
    if current:
        return str(current)
    raise ConfigError(
        "recommender: no Petastorm cache dir for the deep sources: pass cache_dir or set "
        f"{SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF} (training.cache)"
    )


def prepare_twotower(
    spark: SparkSession,
    interactions: DataFrame,
    catalog: DataFrame | None,
    affinities: DataFrame | None,
    params: TwoTowerParams | dict[str, Any],
) -> TwoTower:
    """A two-tower model with its vocabularies, item attributes and user features but freshly
    initialised (untrained) weights: e.g. to time retrieval without training. ``catalog``
    (item_id, category, price) and ``affinities`` (user_id, category, share, user_band) may be
    None (no attributes)."""
    model, _, _ = _prepare(spark, interactions, catalog, affinities, params)
    user, item = build_towers(model.sizes, model.params)
    return dataclasses.replace(
        model, user_weights=user.get_weights(), item_weights=item.get_weights()
    )


def _prepare(
    spark: SparkSession,
    interactions: DataFrame,
    catalog: DataFrame | None,
    affinities: DataFrame | None,
    params: TwoTowerParams | dict[str, Any],
) -> tuple[TwoTower, DataFrame, np.ndarray]:
    """(model without weights, training rows, log pair share per item index)."""
    p = params if isinstance(params, TwoTowerParams) else TwoTowerParams.from_dict(params)
    if catalog is None:  # no attributes: every item in category unknown, price band unknown
        catalog = spark.createDataFrame([], "item_id STRING, category STRING, price DOUBLE")
    if affinities is None:
        affinities = spark.createDataFrame(
            [], "user_id STRING, category STRING, share DOUBLE, user_band STRING"
        )
    inter = interactions.select("user_id", "item_id", F.col("weight").cast("double"))
    item_ids, categories, item_category, item_band, count = item_attributes(inter, catalog)
    if not item_ids:
        raise TrainingError("two-tower: no interactions to train on")
    items = _index(spark, item_ids, "item_id", "item_idx")
    profiles = user_profiles(spark, inter, affinities, items, categories, p).cache()
    n_users = profiles.where(F.col("user_idx").isNotNull()).count()
    sizes = Sizes(n_users, len(item_ids), len(categories))
    rows = (
        inter.join(F.broadcast(items), "item_id")
        .join(padded(profiles.where(F.col("user_idx").isNotNull()), p), "user_id")
        .select(
            "user_idx", "item_idx", F.col("weight").cast("float"), "hist", "cats", "shares", "band"
        )
    )
    log_q = np.log(np.maximum(count, 1.0) / max(float(count.sum()), 1.0)).astype(np.float32)
    model = TwoTower(
        p, sizes, item_ids, categories, item_category, item_band, profiles, [], [], {}, 0.0, 0
    )
    return model, rows, log_q


def fit_twotower(
    spark: SparkSession,
    interactions: DataFrame,
    catalog: DataFrame | None,
    affinities: DataFrame | None,
    params: TwoTowerParams | dict[str, Any],
    cache_dir: str | None = None,
) -> TwoTower:
    """Train the two towers on every (user, item, weight) pair of ``interactions`` with Horovod
    (``num_proc`` processes on the executors), fed by Petastorm."""
    model, rows, log_q = _prepare(spark, interactions, catalog, affinities, params)
    p, sizes = model.params, model.sizes
    widths = {"hist": p.recent_items, "cats": p.user_categories, "shares": p.user_categories}
    log.info(
        "two-tower: %d users, %d items, %d categories", sizes.users, sizes.items, sizes.categories
    )
    fitted = runner.fit(
        spark,
        rows,
        widths,
        _task(sizes, model.item_category, model.item_band, log_q, p),
        runner.Distributed(p.num_proc, p.batch_size, p.epochs, p.learning_rate, p.seed),
        resolve_cache_dir(spark, cache_dir),
        what="two-tower",
    )
    user_w, item_w = fitted.value
    hist = fitted.history
    log.info(
        "two-tower trained in %.1f s, loss %s", fitted.seconds, [round(x, 4) for x in hist["loss"]]
    )
    return dataclasses.replace(
        model, user_weights=user_w, item_weights=item_w, history=hist, seconds=fitted.seconds,
        train_rows=fitted.train_rows,
    )  # fmt: skip


def _task(
    sizes: Sizes, item_category: np.ndarray, item_band: np.ndarray, log_q: np.ndarray,
    p: TwoTowerParams,
) -> runner.KerasTask:  # fmt: skip
    """The two-tower's part of the shared Horovod fit (hooks run in the Horovod processes)."""
    m, c = p.recent_items, p.user_categories

    def build() -> tuple[Any, tuple[Any, Any]]:
        user, item = build_towers(sizes, p)
        return training_model(user, item, item_category, item_band, log_q, p), (user, item)

    def compile_args() -> dict[str, Any]:
        import tensorflow as tf

        return {"loss": tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)}

    def inputs() -> Callable[[Any], Any]:
        import tensorflow as tf

        hist_names = petastorm_io.wide_names("hist", m)
        cat_names = petastorm_io.wide_names("cats", c)
        share_names = petastorm_io.wide_names("shares", c)

        @tf.autograph.experimental.do_not_convert
        def to_inputs(batch: Any) -> tuple[dict[str, Any], Any, Any]:
            pos = tf.cast(batch.item_idx, tf.int32)
            hist = tf.cast(petastorm_io.stack(batch, hist_names), tf.int32)
            inputs = {
                "user_idx": tf.cast(batch.user_idx, tf.int32),
                # leave-one-out: the target is not part of its own history
                "hist": tf.where(tf.equal(hist, pos[:, None]), 0, hist),
                "cats": tf.cast(petastorm_io.stack(batch, cat_names), tf.int32),
                "shares": tf.cast(petastorm_io.stack(batch, share_names), tf.float32),
                "band": tf.cast(batch.band, tf.int32),
                "item_idx": pos,
            }
            weight = tf.math.log1p(tf.cast(batch.weight, tf.float32))
            return inputs, tf.range(tf.shape(pos)[0]), weight

        return to_inputs

    def result(model: Any, parts: tuple[Any, Any]) -> tuple[list[Any], list[Any]]:
        user, item = parts
        return user.get_weights(), item.get_weights()

    return runner.KerasTask(build, compile_args, inputs, result)


# -- retrieval -----------------------------------------------------------------------------------
def recommend_twotower(
    spark: SparkSession, model: TwoTower, users: DataFrame, n: int, rows_per_chunk: int = 1024
) -> DataFrame:
    """(user_id, item_id, score): the ``n`` items with the highest ``user · item`` per user of
    ``users``; item embeddings broadcast in blocks, user embeddings computed in the workers."""
    emb = model.item_embeddings()
    block = model.params.block_items
    sc = spark.sparkContext
    blocks = [sc.broadcast(emb[lo : lo + block]) for lo in range(0, len(emb), block)]
    names = sc.broadcast(np.array(model.item_ids, dtype=object))
    tower = sc.broadcast((model.sizes, model.params, model.user_weights))
    key = f"twotower-{id(model)}-{time.time_ns()}"
    inputs = model.user_inputs(users)
    run = _scorer(tower, blocks, names, key, n, rows_per_chunk)
    return inputs.mapInPandas(run, SCORED)


def _scorer(
    tower: Broadcast[tuple[Sizes, TwoTowerParams, list[np.ndarray]]],
    blocks: list[Broadcast[np.ndarray]],
    names: Broadcast[np.ndarray],
    key: str,
    n: int,
    rows: int,
) -> Callable[[Any], Any]:
    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        user = _TOWER_CACHE.get(key)
        if user is None:
            sizes, params, weights = tower.value
            user, _ = build_towers(sizes, params)
            user.set_weights(weights)
            _TOWER_CACHE.clear()
            _TOWER_CACHE[key] = user
        ids = names.value
        for pdf in batches:
            for start in range(0, len(pdf), rows):
                chunk = pdf.iloc[start : start + rows]
                u = embed_users(user, chunk)
                best_s, best_i = top_items(u, [b.value for b in blocks], n)
                top = best_i.shape[1]
                yield pd.DataFrame(
                    {
                        "user_id": np.repeat(chunk["user_id"].to_numpy(), top),
                        "item_id": ids[best_i.ravel()],
                        "score": best_s.ravel().astype(np.float64),
                    }
                )

    return run


def embed_users(user: Any, pdf: pd.DataFrame) -> np.ndarray:
    """(rows, dim) user embeddings of a pandas frame of padded tower inputs."""
    x = [
        pdf["user_idx"].to_numpy(dtype=np.int32),
        np.stack(pdf["hist"].to_numpy()).astype(np.int32),
        np.stack(pdf["cats"].to_numpy()).astype(np.int32),
        np.stack(pdf["shares"].to_numpy()).astype(np.float32),
        pdf["band"].to_numpy(dtype=np.int32),
    ]
    return np.asarray(user(x, training=False), dtype=np.float32)


def top_items(u: np.ndarray, blocks: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, item positions) of the ``n`` best items per row of ``u`` over the item
    embedding ``blocks`` (consecutive row ranges), merged block by block."""
    best_s = np.empty((len(u), 0), dtype=np.float32)
    best_i = np.empty((len(u), 0), dtype=np.int64)
    offset = 0
    for emb in blocks:
        s = u @ emb.T
        cand_s = np.concatenate([best_s, s], axis=1)
        cand_i = np.concatenate(
            [best_i, np.broadcast_to(np.arange(offset, offset + len(emb)), s.shape)], axis=1
        )
        top = min(n, cand_s.shape[1])
        keep = np.argpartition(-cand_s, top - 1, axis=1)[:, :top]
        best_s = np.take_along_axis(cand_s, keep, axis=1)
        best_i = np.take_along_axis(cand_i, keep, axis=1)
        offset += len(emb)
    return best_s, best_i


_TOWER_CACHE: dict[str, Any] = {}
