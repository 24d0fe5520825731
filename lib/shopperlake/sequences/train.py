"""``train --model sasrec --as-of D`` (job ``train_sasrec``): fit SASRec on the item steps of
``gold.user_sequences`` with Horovod (Petastorm-fed), evaluate it leave-one-out with full
ranking against EASE and popularity, register the version, write ``gold.model_metrics``.

Protocol (:mod:`shopperlake.seqmodel.loo`): every model learns from the training steps
``s_1 .. s_{n-2}`` of every user only; EASE's λ is chosen on the validation targets
``s_{n-1}`` (history ``s_1 .. s_{n-2}``); the reported figures are on the test targets ``s_n``
(history ``s_1 .. s_{n-1}``). Every item of the catalogue is ranked, the history's items are
removed, ties go to the lower item index. HR@k and NDCG@k per user, 95 % bootstrap intervals
over users, and paired intervals of SASRec minus each baseline ("beats" only where that
interval excludes 0).

Leave-one-out is a within-user holdout: other users' later steps are in training. The
recommender's out-of-time protocol (``train_recommender``) is the one without that leak.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pyspark.broadcast import Broadcast
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StringType, StructField, StructType

from shopperlake.churn.train import code_version
from shopperlake.core.cli import Job, JobContext
from shopperlake.core.errors import ConfigError, InputError
from shopperlake.core.storage import Storage
from shopperlake.rec.ease import ease_weights, gram_matrix
from shopperlake.seqmodel import loo, sasrec
from shopperlake.seqmodel.sasrec import MODEL, SasRecParams, Vocab
from shopperlake.training import runner
from shopperlake.training.bootstrap import mean_stat
from shopperlake.training.model_metrics import (
    BootstrapSettings,
    Comparison,
    compare,
    comparison_rows,
    comparison_table,
    write_metrics,
)
from shopperlake.training.registry import Registry
from shopperlake.training.worker_cache import worker_model

log = logging.getLogger(__name__)
TABLE = "gold.user_sequences"
MIN_USERS = 20
RANKS = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("split", StringType(), False),
        StructField("algorithm", StringType(), False),
        StructField("rank", IntegerType(), False),
    ]
)


# -- ranking -------------------------------------------------------------------------------------
def target_ranks(s: np.ndarray, seen: list[np.ndarray], target: np.ndarray) -> np.ndarray:
    """0-based rank of each row's ``target`` column in ``s`` (rows × items + 1) among the
    items not in ``seen`` and not index 0; ties count against the target when the other item
    has the lower index."""
    s = s.astype(np.float64, copy=True)
    s[:, 0] = -np.inf
    for r, items in enumerate(seen):
        s[r, items] = -np.inf
    rows = np.arange(len(s))
    st = s[rows, target][:, None]
    cols = np.arange(s.shape[1])[None, :]
    ties = (s == st) & (cols < target[:, None])
    return ((s > st) | ties).sum(axis=1).astype(np.int64)


def hit_ndcg(rank: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-user HR@k (target in the top k) and NDCG@k (one relevant item: 1/log2(rank + 2))."""
    inside = rank < k
    return inside.astype(np.float64), np.where(inside, 1.0 / np.log2(rank + 2.0), 0.0)


def _ranker(
    algorithms: dict[str, tuple[str, Broadcast[Any]]], key: str, rows: int = 512
) -> Callable[[Any], Any]:
    """The mapInPandas function: per chunk of evaluation rows, every algorithm's full score
    matrix, then the target's rank. Algorithms: ``("sasrec", (vocab, params, weights))``,
    ``("ease", B)`` ((items + 1)² weights in item-index space), ``("popularity", counts)``."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            for start in range(0, len(pdf), rows):
                chunk = pdf.iloc[start : start + rows]
                seen = [np.asarray(x, dtype=np.int64) for x in chunk["seen"]]
                target = chunk["target"].to_numpy(dtype=np.int64)
                for name, (kind, value) in algorithms.items():
                    s = _scores(kind, value, chunk, seen, f"{key}-{name}")
                    yield pd.DataFrame(
                        {
                            "user_id": chunk["user_id"].to_numpy(),
                            "split": chunk["split"].to_numpy(),
                            "algorithm": name,
                            "rank": target_ranks(s, seen, target).astype(np.int32),
                        }
                    )

    return run


def _scores(
    kind: str, value: Broadcast[Any], chunk: pd.DataFrame, seen: list[np.ndarray], key: str
) -> np.ndarray:
    if kind == "sasrec":
        model = worker_model(key, lambda: sasrec.restore(*value.value))
        items = np.stack(chunk["items"].to_numpy()).astype(np.int32)
        types = np.stack(chunk["types"].to_numpy()).astype(np.int32)
        return sasrec.scores(model, items, types)
    if kind == "ease":
        b = value.value
        indptr = np.concatenate([[0], np.cumsum([len(x) for x in seen])])
        cols = np.concatenate(seen) if seen else np.zeros(0, np.int64)
        x = sp.csr_matrix((np.ones(len(cols), np.float32), cols, indptr), shape=(len(seen), len(b)))
        return np.asarray(x @ b)
    if kind == "popularity":
        return np.broadcast_to(value.value, (len(chunk), len(value.value)))
    raise ValueError(f"unknown algorithm kind {kind!r}")


def ranks(
    spark: SparkSession, rows: DataFrame, algorithms: dict[str, tuple[str, Any]]
) -> pd.DataFrame:
    """(user_id, split, algorithm, rank) of every evaluation row under every algorithm
    (values broadcast once, scored in the executors)."""
    sc = spark.sparkContext
    shipped = {name: (kind, sc.broadcast(v)) for name, (kind, v) in algorithms.items()}
    try:
        key = f"sasrec-{time.time_ns()}"
        return rows.mapInPandas(_ranker(shipped, key), RANKS).toPandas()
    finally:
        for _, bc in shipped.values():
            bc.unpersist()


def ease_in_index_space(gram_ids: list[str], b: np.ndarray, n_items: int) -> np.ndarray:
    """EASE weights over item indices 0..n_items (row/column 0 and items without training
    steps stay 0)."""
    full = np.zeros((n_items + 1, n_items + 1), np.float32)
    idx = np.array([int(x) for x in gram_ids], dtype=np.int64)
    full[np.ix_(idx, idx)] = b
    return full


# -- the job -------------------------------------------------------------------------------------
def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=MODEL, choices=[MODEL])
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default sequences.sasrec.epochs)")  # fmt: skip
    parser.add_argument("--num-proc", dest="num_proc", type=int, default=None,
                        help="Horovod processes (default sequences.sasrec.num_proc)")  # fmt: skip


def body(ctx: JobContext) -> int:
    if ctx.as_of is None:
        raise InputError("train --model sasrec needs --as-of YYYY-MM-DD (the sequences' date)")
    spark, lake, as_of = ctx.spark, ctx.lake, ctx.as_of
    section = dict(ctx.cfg.get("sequences.sasrec") or {})
    for flag in ("epochs", "num_proc"):
        if getattr(ctx.args, flag) is not None:
            section[flag] = getattr(ctx.args, flag)
    params = SasRecParams.from_dict(section)
    ease_lambdas(ctx)  # a config error before any work
    seqs = lake.read(TABLE).where(F.col("as_of_date") == F.lit(as_of))
    short = loo.item_steps(seqs, min_steps=0).where(F.col("n") < loo.MIN_STEPS).count()
    indexed = loo.index_steps(spark, loo.item_steps(seqs))
    rows = indexed.rows.cache()
    n_users = rows.count()
    if n_users < MIN_USERS:
        raise InputError(
            f"{TABLE} as of {as_of} has {n_users} users with >= {loo.MIN_STEPS} distinct items "
            f"(need {MIN_USERS}): run build_sequences --as-of {as_of} first"
        )
    vocab = indexed.vocab
    if vocab.items > params.max_items and params.negatives == 0:
        rows.unpersist()
        raise InputError(
            f"{TABLE} as of {as_of} has {vocab.items:,} distinct items, more than "
            f"sequences.sasrec.max_items ({params.max_items:,}): the full softmax holds "
            f"batch_size x max_len x items logits; raise the limit if memory allows, or "
            f"train with a sampled softmax (sequences.sasrec.negatives > 0)"
        )
    print(
        f"sasrec: {n_users:,} users, {vocab.items:,} items, steps as of {as_of}; {short:,} "
        f"users with fewer than {loo.MIN_STEPS} item steps not in the evaluation"
    )
    registry = Registry.from_config(ctx.cfg, lake.root)
    mv = registry.new_version(MODEL)
    try:
        with ctx.progress.stage("sasrec training (Horovod)"):
            train = loo.training_rows(rows, params.max_len).select("items", "types", "targets")
            widths = {c: params.max_len for c in ("items", "types", "targets")}
            counts = loo.target_counts(train, vocab.items) if params.negatives else None
            fitted = runner.fit(
                spark, train, widths, sasrec.task(vocab, params, counts),
                runner.Distributed(params.num_proc, params.batch_size, params.epochs,
                                   params.learning_rate, params.seed, params.precision),
                str(Storage.from_config(ctx.cfg, lake.root).cache), what=MODEL,
            )  # fmt: skip
        with ctx.progress.stage("leave-one-out evaluation"):
            metrics, comparison, lam, ranked = evaluate(ctx, rows, indexed, fitted.value, params)
        save_version(mv.path, vocab, indexed.item_ids, params, fitted, metrics, lam, as_of,
                     n_users, ranked)  # fmt: skip
    except BaseException:
        registry.discard(mv)
        raise
    finally:
        rows.unpersist()
    k = f"ndcg@{params.k}"
    promoted, before = registry.promote_if_not_worse(
        mv, k, metrics["test"][MODEL][k], 0.0, key=("test", MODEL)
    )
    now = dt.datetime.now(dt.UTC)
    out = comparison_rows(MODEL, mv.version, comparison, ctx.run.run_id, now)
    write_metrics(lake, out)
    verdict = "promoted to current" if promoted else "NOT promoted"
    previous = "" if before is None else f"; previous test {k} {before:.4f}"
    print(f"\nmodel {MODEL} {mv.version} ({verdict}{previous}); EASE lambda {lam:g} (validation)")
    print(comparison_table(comparison, [f"hr@{params.k}", k]))
    ctx.run.rows_read = n_users
    ctx.run.metrics["users_too_few_steps"] = float(short)
    ctx.run.rows_written = len(out)
    for algo, m in metrics["test"].items():
        for name, value in m.items():
            ctx.run.metrics[f"test.{algo}.{name}"] = value
    ctx.run.metrics["promoted"] = float(promoted)
    ctx.run.metrics["horovod_seconds"] = fitted.seconds
    return len(out)


def ease_lambdas(ctx: JobContext) -> list[float]:
    lambdas = [float(x) for x in ctx.cfg.get("recommender.ease.lambdas") or []]
    if not lambdas:
        raise ConfigError("recommender.ease.lambdas is empty: the SASRec evaluation chooses "
                          "EASE's lambda among them on the validation targets")  # fmt: skip
    return lambdas


def evaluate(
    ctx: JobContext, rows: DataFrame, indexed: loo.Indexed, weights: list[np.ndarray],
    p: SasRecParams,
) -> tuple[dict[str, dict[str, dict[str, float]]], Comparison, float, pd.DataFrame]:  # fmt: skip
    """Per split and algorithm HR@k / NDCG@k; the test comparison; EASE's λ; the ranks
    (user_id, split, algorithm, rank: 0-based) behind them."""
    spark, vocab = ctx.spark, indexed.vocab
    pairs = loo.interactions(rows)
    gram = gram_matrix(spark, pairs, int(ctx.cfg.get("recommender.ease.max_items")))
    if gram is None:
        raise InputError("sasrec evaluation: more items than recommender.ease.max_items")
    counts = np.zeros(vocab.items + 1, np.float32)
    counts[[int(x) for x in gram.item_ids]] = np.diag(gram.matrix)
    validation = loo.evaluation_rows(rows, "validation", p.max_len)
    test = loo.evaluation_rows(rows, "test", p.max_len)
    lambdas = ease_lambdas(ctx)
    best: tuple[float, float] | None = None
    for lam in lambdas:
        b = ease_in_index_space(gram.item_ids, ease_weights(gram.matrix, lam), vocab.items)
        r = ranks(spark, validation, {"ease": ("ease", b)})["rank"].to_numpy()
        value = float(hit_ndcg(r, p.k)[1].mean())
        log.info("EASE lambda %g: validation ndcg@%d %.4f", lam, p.k, value)
        if best is None or value > best[1]:
            best = (lam, value)
    assert best is not None
    lam = best[0]
    b = ease_in_index_space(gram.item_ids, ease_weights(gram.matrix, lam), vocab.items)
    algorithms = {
        MODEL: ("sasrec", (vocab, p, weights)),
        "ease": ("ease", b),
        "popularity": ("popularity", counts),
    }
    ranked = ranks(spark, validation.unionByName(test), algorithms)
    metrics: dict[str, dict[str, dict[str, float]]] = {}
    stats: dict[str, dict[str, Any]] = {}
    users: np.ndarray | None = None
    for split in ("validation", "test"):
        metrics[split] = {}
        for algo in algorithms:
            part = ranked[(ranked["split"] == split) & (ranked["algorithm"] == algo)]
            part = part.sort_values("user_id")
            hit, ndcg = hit_ndcg(part["rank"].to_numpy(), p.k)
            metrics[split][algo] = {f"hr@{p.k}": float(hit.mean()),
                                    f"ndcg@{p.k}": float(ndcg.mean())}  # fmt: skip
            if split == "test":
                ids = part["user_id"].to_numpy()
                if users is not None and not np.array_equal(users, ids):
                    raise RuntimeError("sasrec evaluation: algorithms ranked different users")
                users = ids
                stats[algo] = {f"hr@{p.k}": mean_stat(hit), f"ndcg@{p.k}": mean_stat(ndcg)}
    assert users is not None
    settings = BootstrapSettings.from_config(ctx.cfg)
    comparison = compare(stats, len(users), MODEL, "loo_test", settings)
    return metrics, comparison, lam, ranked


def save_version(
    path: Path, vocab: Vocab, item_ids: list[str], p: SasRecParams, fitted: runner.Fitted,
    metrics: dict[str, Any], lam: float, as_of: dt.date, users: int, ranked: pd.DataFrame,
) -> None:  # fmt: skip
    np.savez(path / "weights.npz", *fitted.value)
    # every user's rank of the held-out item under every algorithm: the per-user figures
    # behind metrics.json, for paired comparisons with models outside the suite
    ranked.sort_values(["split", "algorithm", "user_id"]).to_parquet(
        path / "loo_ranks.parquet", index=False
    )
    (path / "vocab.json").write_text(
        json.dumps(
            {
                "item_ids": item_ids,
                "item_category": vocab.item_category.tolist(),
                "types": vocab.types,
            }
        )  # fmt: skip
    )
    (path / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (path / "params.json").write_text(
        json.dumps(
            {
                "model": MODEL,
                "sequences_as_of": as_of,
                "sasrec": p.__dict__,
                "ease_lambda": lam,
                "users": users,
                "items": vocab.items,
                "code_version": code_version(),
                "trained_at": dt.datetime.now(dt.UTC).isoformat(),
                "history": fitted.history,
                "horovod_seconds": fitted.seconds,
                "train_rows": fitted.train_rows,
                "num_proc": fitted.num_proc,
            },
            indent=2,
            default=str,
        )
    )


TRAIN_SASREC = Job(
    name="train_sasrec",
    description="Train the SASRec sequence model (Horovod on Spark, Petastorm-fed) on "
    "gold.user_sequences; leave-one-out full-ranking HR/NDCG against EASE and popularity "
    "with paired bootstrap intervals; register.",
    add_args=add_args,
    body=body,
    reads=(TABLE, "gold.model_metrics"),
    writes=("gold.model_metrics", "registry/*"),
)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return TRAIN_SASREC.main(argv, spark)
