"""Training and scoring throughput of the churn DNN path.

1. Input pipeline: the same Keras model fed (a) by the product's Petastorm path
   (:mod:`shopperlake.training.petastorm_io`: scalar feature columns, ``make_batch_reader``,
   ``rebatch``), (b) by an in-memory NumPy ``tf.data`` pipeline (shuffle, batch, prefetch) and,
   for reference, (c) by Petastorm's own ``converter.make_tf_dataset`` over an ``array<float>``
   column; rows/s over the same number of steps. The VM's neighbours make single timings
   swing by up to 2x, so the three are measured in turn ``--rounds`` times and the medians
   (and the median of the per-round ratios) are reported.
2. Horovod on Spark with 1 and 2 processes (``horovod.spark.run``, Petastorm-fed, sharded by
   rank): samples/s over all ranks.
3. Distributed scoring (``predict_column``: broadcast weights, ``mapInPandas``) of 1M users.

    .venv/bin/python bench/bench_training.py [--rows 200000 --features 64 --score-users 1000000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work" / "training"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--score-users", dest="score_users", type=int, default=1_000_000)
    args = parser.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)

    import numpy as np
    import tensorflow as tf
    from petastorm.spark import SparkDatasetConverter, make_spark_converter
    from pyspark.sql import functions as F

    from shopperlake.churn.dnn import TrainedDnn, build_model, predict_column
    from shopperlake.churn.spec import DnnParams
    from shopperlake.core.config import load_config
    from shopperlake.core.session import build_session
    from shopperlake.training import petastorm_io
    from shopperlake.training.runner import horovod_run

    spark = build_session(load_config("local", ["spark.conf.spark.ui.enabled=false"]), "bench")
    spark.conf.set(SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF, (WORK / "cache").as_uri())
    nf, params = args.features, DnnParams(batch_size=args.batch)
    feats = F.array(*[F.randn(seed=i).cast("float") for i in range(nf)])
    df = (
        spark.range(args.rows, numPartitions=8)
        .select(feats.alias("features"))
        .withColumn("label", (F.col("features")[0] + F.col("features")[1] > 0).cast("float"))
        .withColumn("weight", F.lit(1.0).cast("float"))
    )
    df = df.cache()
    conv = petastorm_io.materialise(spark, df, 8, {"features": nf})
    array_conv = make_spark_converter(df.repartition(8))  # Petastorm's own path, for reference
    names = petastorm_io.wide_names("features", nf)
    print(f"materialised {len(conv):,} rows x {nf} features with Petastorm")

    def fit_rate(ds: tf.data.Dataset) -> float:
        model = build_model(nf, params)
        model.compile("adam", "binary_crossentropy")
        model.fit(ds, steps_per_epoch=10, epochs=1, verbose=0)  # warm-up (graph, readers)
        started = time.perf_counter()
        model.fit(ds, steps_per_epoch=args.steps, epochs=1, verbose=0)
        return args.steps * args.batch / (time.perf_counter() - started)

    def product() -> float:
        with petastorm_io.batches(conv, args.batch, seed=1) as ds:
            return fit_rate(
                ds.map(lambda b: (petastorm_io.stack(b, names), b.label)).prefetch(tf.data.AUTOTUNE)
            )

    def converter_path() -> float:
        with array_conv.make_tf_dataset(batch_size=args.batch, num_epochs=None) as ds:
            return fit_rate(ds.map(lambda b: (b.features, b.label)))

    pdf: Any = df.select("features", "label").toPandas()
    x = np.stack(pdf["features"].to_numpy()).astype("float32")
    y = pdf["label"].to_numpy(dtype="float32")
    mem_ds = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(10_000)
        .repeat()
        .batch(args.batch)
        .prefetch(tf.data.AUTOTUNE)
    )
    rates: dict[str, list[float]] = {"petastorm": [], "memory": [], "converter": []}
    for r in range(args.rounds):
        rates["petastorm"].append(product())
        rates["memory"].append(fit_rate(mem_ds))
        rates["converter"].append(converter_path())
        print(
            f"round {r + 1}: petastorm {rates['petastorm'][-1]:,.0f}, in-memory "
            f"{rates['memory'][-1]:,.0f}, make_tf_dataset {rates['converter'][-1]:,.0f} rows/s",
            flush=True,
        )
    med = {k: float(np.median(v)) for k, v in rates.items()}
    ratio = float(np.median(np.array(rates["petastorm"]) / np.array(rates["memory"])))
    ratio_conv = float(np.median(np.array(rates["converter"]) / np.array(rates["memory"])))
    print(
        f"input pipeline (median of {args.rounds}): Petastorm {med['petastorm']:,.0f} rows/s, "
        f"in-memory tf.data {med['memory']:,.0f} rows/s -> {ratio:.0%} of in-memory "
        f"(make_tf_dataset on an array column: {med['converter']:,.0f} rows/s, "
        f"{ratio_conv:.0%})"
    )
    array_conv.delete()

    def hvd_fn() -> float:
        import horovod.tensorflow.keras as hvd
        import tensorflow as tf_

        hvd.init()
        model = build_model(nf, params)
        opt = hvd.DistributedOptimizer(tf_.keras.optimizers.Adam(0.001 * hvd.size()))
        model.compile(opt, "binary_crossentropy", experimental_run_tf_function=False)
        cb = [hvd.callbacks.BroadcastGlobalVariablesCallback(0)]
        with petastorm_io.batches(
            conv, args.batch, shard=hvd.rank(), shard_count=hvd.size(), seed=1
        ) as ds_:
            data = ds_.map(lambda b: (petastorm_io.stack(b, names), b.label)).prefetch(
                tf_.data.AUTOTUNE
            )
            model.fit(data, steps_per_epoch=10, epochs=1, callbacks=cb, verbose=0)
            started = time.perf_counter()
            model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
            return args.steps * args.batch / (time.perf_counter() - started)

    for n in (1, 2):
        per_rank = horovod_run(hvd_fn, n)
        print(
            f"horovod.spark.run num_proc={n}: {sum(per_rank):,.0f} samples/s "
            f"({', '.join(f'{r:,.0f}' for r in per_rank)} per rank)"
        )
    conv.delete()

    model = build_model(nf, params)
    trained = TrainedDnn(model.get_config(), model.get_weights(), {}, 0.0, 0, 1)
    users = spark.range(args.score_users, numPartitions=8).select(
        F.col("id").cast("string").alias("user_id"), feats.alias("features")
    )
    started = time.perf_counter()
    n = predict_column(spark, users, trained).where(F.col("score") >= 0).count()
    secs = time.perf_counter() - started
    print(
        f"scoring: {n:,} users in {secs:.1f}s -> {n / secs:,.0f} users/s (mapInPandas, "
        f"model broadcast once per worker)"
    )
    spark.stop()
    shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
