"""The shared Horovod runner's precision policy: ``auto`` resolved by hand, and SASRec trained
by Horovod under ``mixed_float16`` (the GPU path, run here on the CPU): the processes compute
in float16 behind Keras' loss-scaling optimizer around Horovod's, and the float32 weights that
come back score like a float32 model's."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyspark.sql import SparkSession

from shopperlake.seqmodel import sasrec
from shopperlake.seqmodel.sasrec import SasRecParams, Vocab
from shopperlake.training import runner
from tests.test_sasrec_pattern import LENGTH, N_ITEMS, planted

pytestmark = pytest.mark.training


def test_precision_names() -> None:
    assert runner.resolve_precision("auto", has_gpu=False) == "float32"
    assert runner.resolve_precision("auto", has_gpu=True) == "mixed_float16"
    assert runner.resolve_precision("mixed_bfloat16", has_gpu=False) == "mixed_bfloat16"
    with pytest.raises(ValueError, match="precision must be one of"):
        runner.resolve_precision("float16", has_gpu=True)
    with pytest.raises(Exception, match="sequences.sasrec: precision must be one of"):
        SasRecParams(precision="fp16").validate()


def test_sasrec_trains_under_mixed_float16_with_horovod(
    spark: SparkSession, tmp_path: Path
) -> None:
    rng = np.random.default_rng(5)
    succ = np.zeros(N_ITEMS + 1, np.int32)
    succ[1:] = rng.permutation(np.arange(1, N_ITEMS + 1))
    items, types, targets, _ = planted(rng, succ, 2048)
    rows = [
        (i.tolist(), t.tolist(), y.tolist()) for i, t, y in zip(items, types, targets, strict=True)
    ]
    train = spark.createDataFrame(rows, "items array<int>, types array<int>, targets array<int>")
    vocab = Vocab(N_ITEMS, 1, np.zeros(N_ITEMS + 1, np.int32))
    p = SasRecParams(max_len=LENGTH, dim=16, blocks=1, heads=1, dropout=0.0, epochs=8,
                     batch_size=64, negatives=8, precision="mixed_float16")  # fmt: skip
    counts = np.bincount(targets.ravel(), minlength=N_ITEMS + 1)
    base = sasrec.task(vocab, p, counts)

    def result(model: Any, parts: Any) -> dict[str, Any]:
        opt = model.optimizer
        return {
            "weights": base.result(model, parts),
            "optimizer": type(opt).__name__,
            # Horovod's optimizer subclasses Adam under the same name, adding its all-reduce
            "inner_allreduces": hasattr(getattr(opt, "inner_optimizer", opt), "_allreduce_grads"),
            "compute": model.item_emb.compute_dtype,
        }

    task = dataclasses.replace(base, result=result)
    run = runner.Distributed(1, p.batch_size, p.epochs, p.learning_rate, p.seed, p.precision)
    fitted = runner.fit(spark, train, {c: LENGTH for c in ("items", "types", "targets")}, task,
                        run, (tmp_path / "cache").as_uri(), what="mixed precision")  # fmt: skip

    assert fitted.precision == "mixed_float16"
    got = fitted.value
    assert got["compute"] == "float16"
    # Keras' loss scaling wraps Horovod's all-reducing optimizer (compute_gradients scales the
    # loss, Horovod all-reduces the scaled gradients, then they are unscaled)
    assert got["optimizer"] == "LossScaleOptimizerV3" and got["inner_allreduces"]
    losses = fitted.history["loss"]
    assert len(losses) == 8 and np.all(np.isfinite(losses)) and losses[-1] < 0.8 * losses[0]
    assert all(w.dtype == np.float32 for w in got["weights"])
    # the weights load into a float32 model (scoring's) and give finite scores
    model = sasrec.restore(vocab, p, got["weights"])
    assert model.item_emb.compute_dtype == "float32"
    assert np.all(np.isfinite(sasrec.scores(model, items[:16], types[:16])[:, 1:]))
