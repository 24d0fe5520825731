"""Keras DNN trained with Horovod across Spark executors, fed by Petastorm.

The training and validation splits are materialised to Parquet by Petastorm's
``make_spark_converter`` (cache dir from config, one scalar column per feature: see
:mod:`shopperlake.ml.petastorm_io`); ``horovod.spark.run`` starts ``num_proc`` processes on
the executors, each reading its shard (``cur_shard=hvd.rank()``). Horovod idioms:
imports inside the shipped function, GPU pinned by local rank when there are GPUs, learning
rate scaled by ``hvd.size()``, initial state broadcast from rank 0, metrics averaged across
ranks, early stopping on validation AUC, checkpoints and the returned model from rank 0 only.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DoubleType, StringType, StructField, StructType

from shopperlake.errors import ShopperLakeError
from shopperlake.ml.spec import DnnParams

log = logging.getLogger(__name__)


class TrainingError(ShopperLakeError):
    """Distributed training could not run or produced nothing."""


@dataclass
class TrainedDnn:
    config: dict[str, Any]  # Keras model config (JSON-able)
    weights: list[np.ndarray]
    history: dict[str, list[float]]
    seconds: float
    train_rows: int
    num_proc: int

    def build(self) -> Any:
        """The Keras model (imports TensorFlow lazily: only training/scoring code needs it)."""
        import tensorflow as tf

        model = tf.keras.Sequential.from_config(self.config)
        model.set_weights(self.weights)
        return model


def build_model(n_features: int, params: DnnParams) -> Any:
    import tensorflow as tf

    layers: list[Any] = [tf.keras.layers.Input(shape=(n_features,), name="features")]
    for width in params.hidden:
        layers.append(tf.keras.layers.Dense(width, activation="relu"))
        if params.dropout > 0:
            layers.append(tf.keras.layers.Dropout(params.dropout))
    layers.append(tf.keras.layers.Dense(1, activation="sigmoid", name="score"))
    return tf.keras.Sequential(layers)


def horovod_run(fn: Any, num_proc: int) -> list[Any]:
    """``horovod.spark.run`` over Gloo. Naming Gloo skips Horovod's "was MPI built?" probe,
    which forks the driver and fails (``queue.Empty``) when the driver already runs
    TensorFlow or reader threads; this stack is built without MPI anyway."""
    import horovod.spark

    return list(horovod.spark.run(fn, num_proc=num_proc, use_gloo=True, verbose=0))


def train_dnn(
    spark: SparkSession,
    train: DataFrame,
    validation: DataFrame,
    n_features: int,
    params: DnnParams,
    cache_dir: str,
    checkpoint_dir: str | None = None,
) -> TrainedDnn:
    """Train on ``train`` (columns features array<float>, label, weight) with Horovod.

    ``validation`` drives early stopping. Returns rank 0's model config and weights.
    """
    from petastorm.spark import SparkDatasetConverter

    from shopperlake.ml import petastorm_io

    spark.conf.set(SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF, cache_dir)
    cols = ["features", "label", "weight"]
    train = train.select(*cols).withColumns(
        {"label": F.col("label").cast("float"), "weight": F.col("weight").cast("float")}
    )
    validation = validation.select(*cols).withColumns(
        {"label": F.col("label").cast("float"), "weight": F.col("weight").cast("float")}
    )
    num_proc = params.num_proc
    # At least two Parquet files per process: Petastorm shards by row group, and an empty
    # shard would leave a Horovod rank without data.
    widths = {"features": n_features}
    names = petastorm_io.wide_names("features", n_features)
    train_conv = petastorm_io.materialise(spark, train, max(2 * num_proc, 4), widths)
    val_conv = petastorm_io.materialise(spark, validation, max(2 * num_proc, 4), widths)
    n_train, n_val = len(train_conv), len(val_conv)
    if n_train == 0 or n_val == 0:
        raise TrainingError(f"empty split for training: train={n_train} validation={n_val}")
    steps = max(1, math.ceil(n_train / (params.batch_size * num_proc)))
    val_steps = max(1, math.ceil(n_val / (params.batch_size * num_proc)))
    log.info(
        "training on %d rows (%d validation) with %d Horovod processes", n_train, n_val, num_proc
    )

    def train_fn() -> tuple[int, dict[str, Any] | None, list[Any] | None, dict[str, list[float]]]:
        import horovod.tensorflow.keras as hvd
        import tensorflow as tf

        hvd.init()
        gpus = tf.config.experimental.list_physical_devices("GPU")
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
        if gpus:
            tf.config.experimental.set_visible_devices(gpus[hvd.local_rank()], "GPU")
        tf.keras.utils.set_random_seed(params.seed + hvd.rank())
        model = build_model(n_features, params)
        optimizer = hvd.DistributedOptimizer(
            tf.keras.optimizers.Adam(learning_rate=params.learning_rate * hvd.size())
        )
        model.compile(
            optimizer=optimizer,
            loss="binary_crossentropy",
            weighted_metrics=[],
            metrics=[tf.keras.metrics.AUC(name="auc")],
            experimental_run_tf_function=False,
        )
        callbacks: list[Any] = [
            hvd.callbacks.BroadcastGlobalVariablesCallback(0),
            hvd.callbacks.MetricAverageCallback(),
            tf.keras.callbacks.EarlyStopping(
                monitor="val_auc",
                mode="max",
                patience=params.patience,
                restore_best_weights=True,
            ),
        ]
        if checkpoint_dir and hvd.rank() == 0:
            callbacks.append(
                tf.keras.callbacks.ModelCheckpoint(
                    f"{checkpoint_dir}/epoch-{{epoch:03d}}.weights.h5", save_weights_only=True
                )
            )

        def xyw(batch: Any) -> tuple[Any, Any, Any]:
            return petastorm_io.stack(batch, names), batch.label, batch.weight

        shard = {"shard": hvd.rank(), "shard_count": hvd.size(), "seed": params.seed}
        with (
            petastorm_io.batches(train_conv, params.batch_size, **shard) as train_ds,
            petastorm_io.batches(val_conv, params.batch_size, shuffle=False, **shard) as val_ds,
        ):
            history = model.fit(
                train_ds.map(xyw).prefetch(tf.data.AUTOTUNE),
                steps_per_epoch=steps,
                validation_data=val_ds.map(xyw).prefetch(tf.data.AUTOTUNE),
                validation_steps=val_steps,
                epochs=params.epochs,
                callbacks=callbacks,
                verbose=0,
            )
        hist = {k: [float(x) for x in v] for k, v in history.history.items()}
        if hvd.rank() == 0:
            return 0, model.get_config(), model.get_weights(), hist
        return hvd.rank(), None, None, hist

    started = time.monotonic()
    try:
        results = horovod_run(train_fn, num_proc)
    finally:
        train_conv.delete()
        val_conv.delete()
    seconds = time.monotonic() - started
    rank0 = [r for r in results if r[0] == 0 and r[1] is not None]
    if not rank0:
        raise TrainingError("Horovod rank 0 returned no model")
    _, config, weights, history = rank0[0]
    assert config is not None and weights is not None
    return TrainedDnn(config, weights, history, seconds, n_train, num_proc)


def predict_column(
    spark: SparkSession,
    df: DataFrame,
    model: TrainedDnn,
    reasons: list[str] | None = None,
    top_k: int = 3,
    batch: int = 4096,
) -> DataFrame:
    """Add ``score`` to ``df`` (which has ``features``) with the model broadcast once and
    built once per Python worker; Arrow batches through ``mapInPandas``.

    With ``reasons`` (the feature names), also ``top_reasons``: the ``top_k`` features whose
    gradient x input contribution pushes this user's score up most (inputs are standardised,
    so the contribution is relative to an average user).
    """
    payload = spark.sparkContext.broadcast((model.config, model.weights))
    key = f"dnn-{id(model)}-{time.time_ns()}"
    # A new StructType: ``df.schema.add`` would mutate the frame's cached schema.
    extra = [StructField("score", DoubleType(), True)]
    if reasons is not None:
        extra.append(StructField("top_reasons", ArrayType(StringType()), True))
    schema = StructType([*df.schema.fields, *extra])
    names = np.array(reasons or [], dtype=object)

    def score(batches: Any) -> Any:
        import numpy as np_

        cached = _MODEL_CACHE.get(key)
        if cached is None:
            import tensorflow as tf

            config, weights = payload.value
            cached = tf.keras.Sequential.from_config(config)
            cached.set_weights(weights)
            _MODEL_CACHE.clear()
            _MODEL_CACHE[key] = cached
        for pdf in batches:
            if len(pdf) == 0:
                continue
            x = np_.stack(pdf["features"].to_numpy()).astype("float32")
            if reasons is None:
                pdf["score"] = cached.predict(x, batch_size=batch, verbose=0).reshape(-1)
                yield pdf
                continue
            import tensorflow as tf

            tx = tf.constant(x)
            with tf.GradientTape() as tape:
                tape.watch(tx)
                y = cached(tx, training=False)
            contrib = (tape.gradient(y, tx) * tx).numpy()
            order = np_.argsort(-contrib, axis=1)[:, :top_k]
            pdf["score"] = y.numpy().reshape(-1).astype("float64")
            pdf["top_reasons"] = [
                [str(names[j]) for j in row if contrib[i, j] > 0] for i, row in enumerate(order)
            ]
            yield pdf

    return df.mapInPandas(score, schema)


_MODEL_CACHE: dict[str, Any] = {}
