"""The one Horovod runner every deep model trains with.

A model contributes a :class:`KerasTask` (how to build and compile it, how a Petastorm batch
becomes its inputs, what rank 0 returns); :func:`fit` does the rest, the same way for all:
the frames are materialised by Petastorm (:mod:`shopperlake.training.petastorm_io`, at least
two row groups per process so no rank is left without data), ``horovod.spark.run`` starts
``num_proc`` processes on the executors, and each one initialises Horovod, limits its threads
to its share of the executor's cores, pins one GPU by local rank when there are GPUs, seeds
itself, sets the Keras precision policy (``Distributed.precision``; :func:`precision_policy`),
scales the learning rate by ``hvd.size()``, broadcasts rank 0's initial state, averages
metrics across ranks, reads its own shard and fits. Only rank 0's result comes back.

Mixed precision (``mixed_float16`` on GPUs, ``mixed_bfloat16`` on CPUs and TPUs that have it,
``auto``: ``mixed_float16`` where the process sees a GPU, else ``float32``): the layers compute
in 16 bits and keep float32 variables; under ``mixed_float16`` Keras' ``compile`` wraps the
Horovod optimizer in a ``LossScaleOptimizer``, whose ``compute_gradients`` scales the loss,
lets Horovod all-reduce the scaled gradients and unscales them (so a gradient that underflows
in float16 is not lost, and every rank skips the same overflowing steps). A model opts in by
keeping its logits and losses in float32 (see :mod:`shopperlake.seqmodel.sasrec`).

Every task hook runs inside the Horovod processes, after TensorFlow is imported there: hooks
import what they need themselves and capture only picklable values.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from shopperlake.core.errors import ShopperLakeError
from shopperlake.training import petastorm_io

log = logging.getLogger(__name__)


class TrainingError(ShopperLakeError):
    """Distributed training could not run or produced nothing."""


@dataclass(frozen=True)
class Distributed:
    """How many processes, and the optimisation settings every deep model shares."""

    num_proc: int
    batch_size: int
    epochs: int
    learning_rate: float  # per process: Adam runs at learning_rate × hvd.size()
    seed: int
    precision: str = "float32"  # Keras policy, or auto (see the module's docstring)


PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16", "auto")


def resolve_precision(precision: str, has_gpu: bool) -> str:
    """The Keras policy name for ``precision``: ``auto`` is ``mixed_float16`` with a GPU,
    else ``float32``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "mixed_float16" if has_gpu else "float32"
    return precision


@contextlib.contextmanager
def precision_policy(precision: str) -> Iterator[str]:
    """Set the global Keras policy for ``precision`` (resolved against the visible GPUs) and
    restore the previous one on leaving; yields the policy's name."""
    import tensorflow as tf

    name = resolve_precision(precision, bool(tf.config.list_physical_devices("GPU")))
    before = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(name)
    try:
        yield name
    finally:
        tf.keras.mixed_precision.set_global_policy(before)


def _no_callbacks(rank: int) -> list[Any]:
    return []


@dataclass(frozen=True)
class KerasTask:
    """A model's part of a distributed fit (every hook runs in the Horovod processes).

    - ``build()`` → ``(model, parts)``: the Keras model to fit and anything ``result`` needs
      (e.g. the towers inside a two-tower model);
    - ``compile_args()`` → keyword arguments of ``model.compile`` other than the optimizer;
    - ``inputs()`` → the function mapping a Petastorm batch to ``(x, y[, weight])``;
    - ``callbacks(rank)`` → Keras callbacks beyond Horovod's broadcast and metric averaging;
    - ``result(model, parts)`` → what rank 0 returns (weights, config: picklable).
    """

    build: Callable[[], tuple[Any, Any]]
    compile_args: Callable[[], dict[str, Any]]
    inputs: Callable[[], Callable[[Any], Any]]
    result: Callable[[Any, Any], Any]
    callbacks: Callable[[int], list[Any]] = field(default=_no_callbacks)


@dataclass
class Fitted:
    """Rank 0's result, its Keras history, wall seconds, the number of training rows, the
    processes and the precision policy they trained under."""

    value: Any
    history: dict[str, list[float]]
    seconds: float
    train_rows: int
    num_proc: int
    precision: str = "float32"  # the Keras policy the processes trained under


# what each Horovod process returns: rank, rank 0's result (else None), history, policy
RankResult = tuple[int, Any, dict[str, list[float]], str]


def horovod_run(fn: Any, num_proc: int) -> list[Any]:
    """``horovod.spark.run`` over Gloo. Naming Gloo skips Horovod's "was MPI built?" probe,
    which forks the driver and fails (``queue.Empty``) when the driver already runs
    TensorFlow or reader threads; this stack is built without MPI anyway."""
    import horovod.spark

    return list(horovod.spark.run(fn, num_proc=num_proc, use_gloo=True, verbose=0))


def fit(
    spark: SparkSession,
    train: DataFrame,
    widths: dict[str, int],
    task: KerasTask,
    run: Distributed,
    cache_dir: str,
    validation: DataFrame | None = None,
    what: str = "model",
) -> Fitted:
    """Fit ``task`` on ``train`` (``validation`` for Keras' validation metrics and early
    stopping) with ``run.num_proc`` Horovod processes fed by Petastorm from ``cache_dir``.

    ``widths`` names the array columns and their lengths (stored as one scalar column per
    element, Petastorm's fast path)."""
    from petastorm.spark import SparkDatasetConverter

    spark.conf.set(SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF, cache_dir)
    num_proc = run.num_proc
    files = max(2 * num_proc, 4)
    train_conv = petastorm_io.materialise(spark, train, files, widths)
    val_conv = (
        petastorm_io.materialise(spark, validation, files, widths)
        if validation is not None
        else None
    )
    try:
        n_train = len(train_conv)
        n_val = len(val_conv) if val_conv is not None else None
        if n_train == 0 or n_val == 0:
            raise TrainingError(f"{what}: empty split for training: train={n_train} "
                                f"validation={n_val}")  # fmt: skip
        steps = max(1, math.ceil(n_train / (run.batch_size * num_proc)))
        val_steps = max(1, math.ceil((n_val or 0) / (run.batch_size * num_proc)))
        log.info(
            "%s: %d training rows%s, %d Horovod processes, %d steps per epoch", what, n_train,
            f" ({n_val} validation)" if n_val is not None else "", num_proc, steps,
        )  # fmt: skip
        worker = _worker(train_conv, val_conv, task, run, steps, val_steps)
        started = time.monotonic()
        results = horovod_run(worker, num_proc)
        seconds = time.monotonic() - started
    finally:
        train_conv.delete()
        if val_conv is not None:
            val_conv.delete()
    rank0 = [r for r in results if r[0] == 0 and r[1] is not None]
    if not rank0:
        raise TrainingError(f"{what}: Horovod rank 0 returned no model")
    _, value, history, policy = rank0[0]
    return Fitted(value, history, seconds, n_train, num_proc, policy)


def _worker(
    train_conv: Any, val_conv: Any, task: KerasTask, run: Distributed, steps: int, val_steps: int
) -> Callable[[], RankResult]:
    """The function ``horovod.spark.run`` ships to each process (imports inside)."""

    def worker() -> RankResult:
        import os

        import horovod.tensorflow.keras as hvd
        import tensorflow as tf

        hvd.init()
        # The processes share the executor's cores: no more threads each than its share.
        threads = max(1, (os.cpu_count() or 1) // max(1, hvd.local_size()))
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        gpus = tf.config.experimental.list_physical_devices("GPU")
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
        if gpus:
            tf.config.experimental.set_visible_devices(gpus[hvd.local_rank()], "GPU")
        tf.keras.utils.set_random_seed(run.seed + hvd.rank())
        with precision_policy(run.precision) as policy:
            return fit_model(policy)

    def fit_model(policy: str) -> RankResult:
        import horovod.tensorflow.keras as hvd
        import tensorflow as tf

        from shopperlake.training import petastorm_io as io

        model, parts = task.build()
        # under mixed_float16 compile wraps this optimizer in a LossScaleOptimizer
        model.compile(
            optimizer=hvd.DistributedOptimizer(
                tf.keras.optimizers.Adam(learning_rate=run.learning_rate * hvd.size())
            ),
            experimental_run_tf_function=False,
            **task.compile_args(),
        )
        callbacks = [
            hvd.callbacks.BroadcastGlobalVariablesCallback(0),
            hvd.callbacks.MetricAverageCallback(),
            *task.callbacks(hvd.rank()),
        ]
        to_inputs = task.inputs()
        shard = {"shard": hvd.rank(), "shard_count": hvd.size(), "seed": run.seed}
        with contextlib.ExitStack() as stack:
            train_ds = stack.enter_context(io.batches(train_conv, run.batch_size, **shard))
            extra: dict[str, Any] = {}
            if val_conv is not None:
                val_ds = stack.enter_context(
                    io.batches(val_conv, run.batch_size, shuffle=False, **shard)
                )
                extra = {
                    "validation_data": val_ds.map(to_inputs).prefetch(tf.data.AUTOTUNE),
                    "validation_steps": val_steps,
                }
            history = model.fit(
                train_ds.map(to_inputs).prefetch(tf.data.AUTOTUNE),
                steps_per_epoch=steps,
                epochs=run.epochs,
                callbacks=callbacks,
                verbose=0,
                **extra,
            )
        hist = {k: [float(x) for x in v] for k, v in history.history.items()}
        if hvd.rank() == 0:
            return 0, task.result(model, parts), hist, policy
        return hvd.rank(), None, hist, policy

    return worker
