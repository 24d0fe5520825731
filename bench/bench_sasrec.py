"""Training throughput of SASRec (sequences/s): Petastorm vs in-memory ``tf.data``, and
Horovod with 1 and 2 processes.

Data: ``--users`` synthetic users, each a random walk of 5 .. 2 x ``max_len`` distinct item
indices out of ``--items``, turned into training rows by the product's own
:func:`shopperlake.seqmodel.loo.training_rows` (inputs ``s_1 .. s_{m-1}``, targets
``s_2 .. s_m``, left-padded to ``max_len``). The model is the configured
``sequences.sasrec`` shape (full softmax over the catalogue).

0. The Petastorm path alone: 200 batches read and mapped to model inputs, no model.
1. Input pipeline, one process: the same model fed (a) by the product's Petastorm path
   (:func:`shopperlake.training.petastorm_io.materialise` → ``make_batch_reader`` →
   ``rebatch`` → :func:`shopperlake.seqmodel.sasrec.task`'s input map), (b) by an in-memory
   NumPy ``tf.data`` pipeline (shuffle, batch, prefetch) of the same rows. Sequences/s over
   the same number of steps after a warm-up; the two are measured in turn ``--rounds`` times
   and the medians and the median of the per-round ratios are reported (the VM is shared).
2. Horovod on Spark (``horovod.spark.run``, sharded by rank, the runner's
   ``DistributedOptimizer``) with 1 and 2 processes, where the product trains: sequences/s
   over all ranks fed by Petastorm and, in the same kind of process, by the in-memory
   pipeline of the rank's shard; in turn, ``--rounds`` times, medians and the median ratio.

    .venv/bin/python bench/bench_sasrec.py [--users 20000 --items 5000 --steps 150 --rounds 3]
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
WORK = REPO / "bench" / "work" / "sasrec"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)

    import numpy as np
    import pandas as pd
    import tensorflow as tf
    from petastorm.spark import SparkDatasetConverter

    from shopperlake.core.config import load_config
    from shopperlake.core.session import build_session
    from shopperlake.seqmodel import loo, sasrec
    from shopperlake.seqmodel.build import FUNNEL
    from shopperlake.training import petastorm_io
    from shopperlake.training.runner import horovod_run

    cfg = load_config("local", ["spark.conf.spark.ui.enabled=false"])
    p = sasrec.SasRecParams.from_dict(dict(cfg.get("sequences.sasrec") or {}))
    spark = build_session(cfg, "bench-sasrec")
    spark.sparkContext.setLogLevel("ERROR")
    spark.conf.set(SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF, (WORK / "cache").as_uri())

    rng = np.random.default_rng(args.seed)
    lengths = rng.integers(5, 2 * p.max_len + 1, args.users)
    starts = rng.integers(1, args.items + 1, args.users)
    walks = [
        ((s - 1 + np.arange(n)) % args.items + 1).tolist()
        for s, n in zip(starts, lengths, strict=False)
    ]
    kinds = [rng.integers(1, len(FUNNEL) + 1, len(w)).tolist() for w in walks]
    indexed = spark.createDataFrame(
        pd.DataFrame({"user_id": [f"u{i}" for i in range(args.users)], "items": walks,
                      "types": kinds, "n": lengths.astype("int32")}),
        "user_id STRING, items ARRAY<INT>, types ARRAY<INT>, n INT",
    )  # fmt: skip
    train = loo.training_rows(indexed, p.max_len).select("items", "types", "targets").cache()
    rows = train.count()
    vocab = sasrec.Vocab(args.items, len(FUNNEL), np.zeros(args.items + 1, np.int32))
    task = sasrec.task(vocab, p)
    widths = {c: p.max_len for c in ("items", "types", "targets")}
    conv = petastorm_io.materialise(spark, train, 8, widths)
    print(
        f"{rows:,} training sequences (max_len {p.max_len}) over {args.items:,} items; model "
        f"dim {p.dim}, {p.blocks} blocks, {p.heads} heads, batch {p.batch_size}; "
        f"{os.cpu_count()} CPU cores",
        flush=True,
    )

    def fit_rate(ds: Any) -> float:
        tf.keras.utils.set_random_seed(p.seed)
        model = sasrec.build_model(vocab, p)
        model.compile(optimizer=tf.keras.optimizers.Adam(p.learning_rate), **sasrec.compile_args())
        model.fit(ds, steps_per_epoch=10, epochs=1, verbose=0)  # warm-up (graph, readers)
        started = time.perf_counter()
        model.fit(ds, steps_per_epoch=args.steps, epochs=1, verbose=0)
        return args.steps * p.batch_size / (time.perf_counter() - started)

    def petastorm_rate() -> float:
        with petastorm_io.batches(conv, p.batch_size, seed=1) as ds:
            return fit_rate(ds.map(task.inputs()).prefetch(tf.data.AUTOTUNE))

    with petastorm_io.batches(conv, p.batch_size, seed=1) as ds:
        it = iter(ds.map(task.inputs()).prefetch(tf.data.AUTOTUNE))
        next(it)
        started = time.perf_counter()
        for _ in range(200):
            next(it)
        read = 200 * p.batch_size / (time.perf_counter() - started)
    print(f"Petastorm path, reading only (no model): {read:,.0f} sequences/s", flush=True)

    pdf = train.toPandas()
    x = {c: np.stack(pdf[c].to_numpy()).astype(np.int32) for c in ("items", "types")}
    y = np.stack(pdf["targets"].to_numpy()).astype(np.int32)
    memory = (
        tf.data.Dataset.from_tensor_slices((x, y, (y > 0).astype(np.float32)))
        .shuffle(10_000, seed=1)
        .repeat()
        .batch(p.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    rates: dict[str, list[float]] = {"petastorm": [], "memory": []}
    for r in range(args.rounds):
        rates["petastorm"].append(petastorm_rate())
        rates["memory"].append(fit_rate(memory))
        print(
            f"round {r + 1}: petastorm {rates['petastorm'][-1]:,.0f}, in-memory "
            f"{rates['memory'][-1]:,.0f} sequences/s",
            flush=True,
        )
    med = {k: float(np.median(v)) for k, v in rates.items()}
    ratio = float(np.median(np.array(rates["petastorm"]) / np.array(rates["memory"])))
    print(
        f"input pipeline (median of {args.rounds}): Petastorm {med['petastorm']:,.0f} "
        f"sequences/s, in-memory tf.data {med['memory']:,.0f} sequences/s -> {ratio:.0%} of "
        f"in-memory",
        flush=True,
    )

    steps, batch, lr, seed = args.steps, p.batch_size, p.learning_rate, p.seed

    def hvd_fn(in_memory: bool) -> Any:
        def fn() -> float:
            import horovod.tensorflow.keras as hvd
            import tensorflow as tf_

            hvd.init()
            threads = max(1, (os.cpu_count() or 1) // max(1, hvd.local_size()))
            tf_.config.threading.set_intra_op_parallelism_threads(threads)
            tf_.keras.utils.set_random_seed(seed + hvd.rank())
            model, _ = task.build()
            opt = hvd.DistributedOptimizer(tf_.keras.optimizers.Adam(lr * hvd.size()))
            model.compile(optimizer=opt, experimental_run_tf_function=False,
                          **task.compile_args())  # fmt: skip
            cb = [hvd.callbacks.BroadcastGlobalVariablesCallback(0)]

            def timed(data: Any) -> float:
                model.fit(data, steps_per_epoch=10, epochs=1, callbacks=cb, verbose=0)
                started = time.perf_counter()
                model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
                return steps * batch / (time.perf_counter() - started)

            if in_memory:  # the same rows, this rank's shard, from NumPy
                r, n = hvd.rank(), hvd.size()
                xs = {k: v[r::n] for k, v in x.items()}
                data = (
                    tf_.data.Dataset.from_tensor_slices((xs, y[r::n], (y[r::n] > 0).astype("f4")))
                    .shuffle(10_000, seed=seed).repeat().batch(batch)
                    .prefetch(tf_.data.AUTOTUNE)
                )  # fmt: skip
                return timed(data)
            shard = {"shard": hvd.rank(), "shard_count": hvd.size(), "seed": seed}
            with petastorm_io.batches(conv, batch, **shard) as ds_:
                return timed(ds_.map(task.inputs()).prefetch(tf_.data.AUTOTUNE))

        return fn

    # in the Horovod processes, where training runs: both input paths, in turn, per size
    for n in (1, 2):
        got: dict[str, list[float]] = {"petastorm": [], "memory": []}
        for _ in range(args.rounds):
            got["petastorm"].append(sum(horovod_run(hvd_fn(False), n)))
            got["memory"].append(sum(horovod_run(hvd_fn(True), n)))
        ratios = np.array(got["petastorm"]) / np.array(got["memory"])
        print(
            f"horovod.spark.run num_proc={n} (median of {args.rounds}): Petastorm "
            f"{np.median(got['petastorm']):,.0f} sequences/s, in-memory tf.data "
            f"{np.median(got['memory']):,.0f} sequences/s -> {np.median(ratios):.0%} of "
            f"in-memory (rounds: {', '.join(f'{v:.0%}' for v in ratios)})",
            flush=True,
        )
    conv.delete()
    spark.stop()
    shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
