"""Training and scoring throughput of the churn DNN path.

1. Input pipeline: the same Keras model fed (a) by Petastorm's ``make_tf_dataset`` over the
   Parquet that ``make_spark_converter`` materialised and (b) by an in-memory NumPy
   ``tf.data`` pipeline; rows/s over the same number of steps, and the ratio.
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

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work" / "training"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--score-users", dest="score_users", type=int, default=1_000_000)
    args = parser.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)

    import horovod.spark
    import numpy as np
    import tensorflow as tf
    from petastorm.spark import SparkDatasetConverter, make_spark_converter
    from pyspark.sql import functions as F

    from shopperlake.config import load_config
    from shopperlake.ml.dnn import TrainedDnn, build_model, predict_column
    from shopperlake.ml.spec import DnnParams
    from shopperlake.session import build_session

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
    conv = make_spark_converter(df.repartition(8))
    print(f"materialised {len(conv):,} rows x {nf} features with Petastorm")

    def fit_rate(ds: tf.data.Dataset) -> float:
        model = build_model(nf, params)
        model.compile("adam", "binary_crossentropy")
        model.fit(ds, steps_per_epoch=10, epochs=1, verbose=0)  # warm-up (graph, readers)
        started = time.perf_counter()
        model.fit(ds, steps_per_epoch=args.steps, epochs=1, verbose=0)
        return args.steps * args.batch / (time.perf_counter() - started)

    with conv.make_tf_dataset(batch_size=args.batch, num_epochs=None, workers_count=4) as ds:
        peta = fit_rate(ds.map(lambda b: (b.features, b.label)))
    pdf = df.select("features", "label").toPandas()
    x = np.stack(pdf["features"].to_numpy()).astype("float32")
    y = pdf["label"].to_numpy(dtype="float32")
    mem_ds = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(10_000)
        .repeat()
        .batch(args.batch)
        .prefetch(tf.data.AUTOTUNE)
    )
    mem = fit_rate(mem_ds)
    print(
        f"input pipeline: Petastorm {peta:,.0f} rows/s, in-memory tf.data {mem:,.0f} rows/s "
        f"-> {peta / mem:.0%} of in-memory"
    )

    def hvd_fn() -> float:
        import horovod.tensorflow.keras as hvd
        import tensorflow as tf_

        hvd.init()
        model = build_model(nf, params)
        opt = hvd.DistributedOptimizer(tf_.keras.optimizers.Adam(0.001 * hvd.size()))
        model.compile(opt, "binary_crossentropy", experimental_run_tf_function=False)
        cb = [hvd.callbacks.BroadcastGlobalVariablesCallback(0)]
        with conv.make_tf_dataset(
            batch_size=args.batch,
            cur_shard=hvd.rank(),
            shard_count=hvd.size(),
            num_epochs=None,
            workers_count=2,
        ) as ds_:
            data = ds_.map(lambda b: (b.features, b.label))
            model.fit(data, steps_per_epoch=10, epochs=1, callbacks=cb, verbose=0)
            started = time.perf_counter()
            model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
            return args.steps * args.batch / (time.perf_counter() - started)

    for n in (1, 2):
        rates = horovod.spark.run(hvd_fn, num_proc=n, verbose=0)
        print(
            f"horovod.spark.run num_proc={n}: {sum(rates):,.0f} samples/s "
            f"({', '.join(f'{r:,.0f}' for r in rates)} per rank)"
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
