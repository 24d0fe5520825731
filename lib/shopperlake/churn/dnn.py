"""Keras DNN trained with Horovod across Spark executors, fed by Petastorm.

Trained by the shared runner (:mod:`shopperlake.training.runner`: Petastorm-fed, GPU pinned by
local rank, scaled learning rate, broadcast, rank-0 result); this module adds the network,
the weighted binary cross-entropy, early stopping on validation AUC and rank-0 checkpoints,
and scoring with per-user reasons.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DoubleType, StringType, StructField, StructType

from shopperlake.churn.spec import DnnParams
from shopperlake.training import petastorm_io, runner
from shopperlake.training.worker_cache import worker_model

log = logging.getLogger(__name__)


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


def train_dnn(
    spark: SparkSession,
    train: DataFrame,
    validation: DataFrame,
    n_features: int,
    params: DnnParams,
    cache_dir: str,
    checkpoint_dir: str | None = None,
) -> TrainedDnn:
    """Train on ``train`` (columns features array<float>, label, weight) with the shared
    Horovod runner; ``validation`` drives early stopping on AUC. Rank 0's model comes back."""
    cols = ["features", "label", "weight"]
    cast = {"label": F.col("label").cast("float"), "weight": F.col("weight").cast("float")}
    names = petastorm_io.wide_names("features", n_features)

    def build() -> tuple[Any, None]:
        return build_model(n_features, params), None

    def compile_args() -> dict[str, Any]:
        import tensorflow as tf

        return {"loss": "binary_crossentropy", "weighted_metrics": [],
                "metrics": [tf.keras.metrics.AUC(name="auc")]}  # fmt: skip

    def inputs() -> Any:
        import tensorflow as tf

        # plain tensor ops: nothing for AutoGraph to convert (and its source parse would fail
        # on the shipped function's postponed annotations)
        @tf.autograph.experimental.do_not_convert
        def xyw(batch: Any) -> tuple[Any, Any, Any]:
            return petastorm_io.stack(batch, names), batch.label, batch.weight

        return xyw

    def callbacks(rank: int) -> list[Any]:
        import tensorflow as tf

        out: list[Any] = [
            tf.keras.callbacks.EarlyStopping(
                monitor="val_auc", mode="max", patience=params.patience,
                restore_best_weights=True,
            )
        ]  # fmt: skip
        if checkpoint_dir and rank == 0:
            out.append(
                tf.keras.callbacks.ModelCheckpoint(
                    f"{checkpoint_dir}/epoch-{{epoch:03d}}.weights.h5", save_weights_only=True
                )
            )
        return out

    def result(model: Any, parts: None) -> tuple[dict[str, Any], list[Any]]:
        return model.get_config(), model.get_weights()

    fitted = runner.fit(
        spark,
        train.select(*cols).withColumns(cast),
        {"features": n_features},
        runner.KerasTask(build, compile_args, inputs, result, callbacks),
        runner.Distributed(
            params.num_proc, params.batch_size, params.epochs, params.learning_rate, params.seed
        ),  # fmt: skip
        cache_dir,
        validation=validation.select(*cols).withColumns(cast),
        what="dnn",
    )
    config, weights = fitted.value
    return TrainedDnn(config, weights, fitted.history, fitted.seconds, fitted.train_rows,
                      fitted.num_proc)  # fmt: skip


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

        def build() -> Any:
            import tensorflow as tf

            config, weights = payload.value
            model = tf.keras.Sequential.from_config(config)
            model.set_weights(weights)
            return model

        cached = worker_model(key, build)
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
