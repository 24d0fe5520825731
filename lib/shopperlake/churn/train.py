"""``train --model churn|propensity``: fit the feature transform on the train split, train the
DNN with Horovod on Spark executors fed by Petastorm, fit MLlib baselines on the same split,
calibrate every model on the validation split, evaluate everything side by side, register a
model version and promote it if not worse.

Models train with balanced class weights, so their raw outputs are not probabilities. Each
algorithm gets a calibrator chosen on the validation split (ml/calibration.py); in the metrics
``<algo>`` is the calibrated model and ``<algo>_raw`` its raw output. Validation metrics of a
calibrated model use out-of-fold probabilities (no row scored by a calibrator fitted on it); its
decision threshold is chosen on the final calibrator's validation probabilities. The DNN's
calibrator is stored with the version (``calibration.json``) and applied by ``score``.

With ``models.<name>.sequence.enabled`` two more candidates are evaluated on the same rows: the
``sequence`` head (the SASRec encoder over each row's latest events before its cutoff,
:mod:`shopperlake.seqmodel.heads`, Horovod-trained) and ``blend``, the mean of the DNN's and
the head's raw scores; each is calibrated like every model, the DNN is paired with both and the
blend with the head. ``score`` keeps using the DNN.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shopperlake import __version__
from shopperlake.churn import baselines
from shopperlake.churn.dnn import TrainedDnn, predict_column, train_dnn
from shopperlake.churn.features import FeatureTransform
from shopperlake.churn.spec import CalibrationParams, ModelSpec, model_spec
from shopperlake.core.cli import Job, JobContext
from shopperlake.core.errors import ConfigError, InputError
from shopperlake.core.storage import Storage
from shopperlake.seqmodel import heads
from shopperlake.training import calibration
from shopperlake.training.bootstrap import metric_stat
from shopperlake.training.calibration import Calibrator, Choice
from shopperlake.training.importance import permutation_importance
from shopperlake.training.metrics import (
    brier,
    calibration_table,
    choose_threshold,
    constant_baseline,
    evaluate,
    expected_calibration_error,
    lift_table,
    log_loss,
    plot_curves,
    pr_auc,
    roc_auc,
)
from shopperlake.training.model_metrics import (
    BootstrapSettings,
    Comparison,
    compare,
    comparison_rows,
    comparison_table,
    metric_row,
    write_metrics,
)
from shopperlake.training.registry import Registry

log = logging.getLogger(__name__)
SPLITS = ("validation", "test")
RAW = "_raw"  # suffix of an algorithm's uncalibrated scores in the metrics
SEQUENCE, BLEND = "sequence", "blend"  # the sequence-head candidates (models.<name>.sequence)
Scored = dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]  # algo -> split -> (y, p)


def code_version() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=True,
        ).stdout.strip()
        return f"{__version__}+{sha}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def with_weights(df: DataFrame, pos_rate: float) -> DataFrame:
    """Balanced class weights from the training base rate (each class weighs half)."""
    w_pos, w_neg = 0.5 / pos_rate, 0.5 / (1.0 - pos_rate)
    return df.withColumn("weight", F.when(F.col("label") == 1, w_pos).otherwise(w_neg))


def collect_scores(df: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    # One fixed row order for every algorithm, so plots and tables compare like with like.
    pdf: pd.DataFrame = (
        df.select("cutoff", "user_id", "label", "score").orderBy("cutoff", "user_id").toPandas()
    )
    return pdf["label"].to_numpy(dtype=int), pdf["score"].to_numpy(dtype=float)


def split_users(df: DataFrame) -> np.ndarray:
    """User ids in :func:`collect_scores`' row order: the bootstrap's resampling units."""
    pdf: pd.DataFrame = df.select("cutoff", "user_id").orderBy("cutoff", "user_id").toPandas()
    return pdf["user_id"].to_numpy(dtype=object)


INTERVAL_METRICS: dict[str, Callable[[Any, Any], float]] = {
    "roc_auc": roc_auc,
    "pr_auc": pr_auc,
    "log_loss": log_loss,
    "brier": brier,
    "ece": expected_calibration_error,
}


def compare_models(
    evaluated: Scored,
    constant: dict[str, np.ndarray],
    users: dict[str, np.ndarray],
    metric_names: Sequence[str],
    settings: BootstrapSettings,
) -> dict[str, Comparison]:
    """Per split: bootstrap intervals over users of every algorithm's ``metric_names`` and
    paired differences ``dnn - other`` (calibrated DNN against every other algorithm, its raw
    scores and the constant base rate included)."""
    unknown = [m for m in metric_names if m not in INTERVAL_METRICS]
    if unknown:
        raise ConfigError(
            f"evaluation.classifier_metrics: unknown {unknown} (known: {sorted(INTERVAL_METRICS)})"
        )
    out = {}
    for split in SPLITS:
        y = evaluated["dnn"][split][0]
        scores = {algo: by_split[split][1] for algo, by_split in evaluated.items()}
        scores["constant"] = constant[split]
        stats = {
            algo: {m: metric_stat(INTERVAL_METRICS[m], y, p) for m in metric_names}
            for algo, p in scores.items()
        }
        out[split] = compare(stats, y.size, "dnn", split, settings, groups=users[split])
        if BLEND in stats and SEQUENCE in stats:  # the blend against the head alone
            pair = {a: stats[a] for a in (BLEND, SEQUENCE)}
            versus = compare(pair, y.size, BLEND, split, settings, groups=users[split])
            out[f"{split}:{BLEND}"] = Comparison(BLEND, split, {}, versus.differences)
    return out


def sequence_candidates(
    dnn: dict[str, tuple[np.ndarray, np.ndarray]],
    users: dict[str, np.ndarray],
    head: heads.FittedHead,
) -> Scored:
    """``sequence`` (the head's raw scores) and ``blend`` (the mean of the DNN's and the head's
    raw scores) per split; ``users``: the DNN's user ids in its row order, which the head's
    must repeat (same rows, same order), or the pairing would be meaningless."""
    out: Scored = {SEQUENCE: {}, BLEND: {}}
    for split, (y, p) in dnn.items():
        y_head, p_head = head.scores[split]
        if not np.array_equal(users[split], head.users[split]) or not np.array_equal(y, y_head):
            raise InputError(f"the sequence head's {split} rows differ from the DNN's")
        out[SEQUENCE][split] = (y, p_head)
        out[BLEND][split] = (y, (p + p_head) / 2.0)
    return out


def calibrate(scored: Scored, params: CalibrationParams) -> dict[str, Choice]:
    """Per algorithm: the calibrator chosen (and refitted) on its validation scores."""
    choices = {}
    for algo, by_split in scored.items():
        y_val, p_val = by_split["validation"]
        try:
            choices[algo] = calibration.choose(
                y_val, p_val, params.methods, params.folds, params.seed
            )
        except ValueError as exc:
            raise InputError(f"cannot calibrate {algo} on the validation split: {exc}") from exc
    return choices


def calibrated_scores(
    scored: Scored, choices: dict[str, Choice], spec: ModelSpec
) -> tuple[Scored, dict[str, float]]:
    """Every algorithm calibrated (``<algo>``) and raw (``<algo>_raw``) on each split, with
    its decision threshold chosen on validation probabilities of the same kind."""
    out: Scored = {}
    thresholds: dict[str, float] = {}
    for algo, by_split in scored.items():
        choice = choices[algo]
        (y_val, p_val), (y_test, p_test) = by_split["validation"], by_split["test"]
        out[algo] = {
            "validation": (y_val, choice.out_of_fold),
            "test": (y_test, choice.calibrator.apply(p_test)),
        }
        thresholds[algo] = choose_threshold(
            y_val, choice.calibrator.apply(p_val), spec.threshold_strategy, spec.budget
        )
        out[algo + RAW] = by_split
        thresholds[algo + RAW] = choose_threshold(
            y_val, p_val, spec.threshold_strategy, spec.budget
        )
    return out, thresholds


def calibration_summary(
    choices: dict[str, Choice], metrics: dict[str, dict[str, dict[str, float]]]
) -> str:
    """Chosen method per algorithm and Brier / ECE before -> after calibration."""
    lines = ["calibration (chosen on validation by cross-validated log loss):"]
    for algo, choice in choices.items():
        cv = ", ".join(f"{m} {v:.4f}" for m, v in choice.cv_log_loss.items())
        parts = [f"  {algo:<7}{choice.calibrator.method:<9}(cv log loss {cv})"]
        for split in SPLITS:
            raw, cal = metrics[split][algo + RAW], metrics[split][algo]
            parts.append(
                f"{split} brier {raw['brier']:.4f} -> {cal['brier']:.4f}, "
                f"ece {raw['ece']:.4f} -> {cal['ece']:.4f}"
            )
        lines.append("; ".join(parts))
    return "\n".join(lines)


def evaluation_table(metrics: dict[str, dict[str, dict[str, float]]]) -> str:
    cols = [
        "roc_auc", "pr_auc", "log_loss", "brier", "ece", "precision", "recall", "f1", "threshold"
    ]  # fmt: skip
    lines = [f"{'split':<11}{'model':<12}" + "".join(f"{c:>10}" for c in cols)]
    for split, by_algo in metrics.items():
        for algo, m in by_algo.items():
            lines.append(f"{split:<11}{algo:<12}" + "".join(f"{m[c]:>10.4f}" for c in cols))
    return "\n".join(lines)


def metric_rows(
    spec: ModelSpec,
    version: str,
    run_id: str,
    metrics: dict[str, dict[str, dict[str, float]]],
    importance: dict[str, float],
    comparisons: dict[str, Comparison],
) -> list[tuple[Any, ...]]:
    """Figures with intervals and paired differences from ``comparisons``; every other
    figure (thresholds, precision at the threshold, importance) as a plain value."""
    now = dt.datetime.now(dt.UTC)
    rows = [
        row
        for comparison in comparisons.values()
        for row in comparison_rows(spec.name, version, comparison, run_id, now)
    ]
    with_ci = {
        (split, algo, m)
        for split, comparison in comparisons.items()
        for algo, by_metric in comparison.intervals.items()
        for m in by_metric
    }
    rows += [
        metric_row(spec.name, version, algo, split, metric, value, run_id, now)
        for split, by_algo in metrics.items()
        for algo, values in by_algo.items()
        for metric, value in values.items()
        if (split, algo, metric) not in with_ci
    ]
    rows += [
        metric_row(spec.name, version, "dnn", "test", f"importance:{name}", v, run_id, now)
        for name, v in importance.items()
    ]
    return rows


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model name in config (churn, propensity)")
    parser.add_argument(
        "--num-proc",
        dest="num_proc",
        type=int,
        default=None,
        help="Horovod processes (default models.<name>.dnn.num_proc)",
    )


def body(ctx: JobContext) -> None:
    spec = model_spec(ctx.cfg, ctx.args.model)
    params = spec.dnn
    if ctx.args.num_proc:
        params = type(params)(**{**params.__dict__, "num_proc": ctx.args.num_proc})
    lake, spark = ctx.lake, ctx.spark
    ts_version = lake.version("gold.training_sets")
    data = lake.read("gold.training_sets").where(F.col("model") == spec.name).cache()
    counts = {
        (r["split"], r["label"]): r["count"]
        for r in data.groupBy("split", "label").count().collect()
    }
    for split in ("train", *SPLITS):
        if not (counts.get((split, 0)) and counts.get((split, 1))):
            raise InputError(
                f"training set for '{spec.name}' has no {split} rows of both classes "
                f"(counts {counts}): rebuild it with other cutoffs or more data"
            )
    train = data.where("split = 'train'")
    transform = FeatureTransform.fit(
        train, spec.log_transform, spec.categorical_features, spec.vocab_size
    )
    pos_rate = counts[("train", 1)] / (counts[("train", 0)] + counts[("train", 1)])
    frames = {
        split: with_weights(transform.apply(data.where(F.col("split") == split)), pos_rate).select(
            "user_id", "cutoff", "features", "label", "weight"
        )
        for split in ("train", *SPLITS)
    }
    names = transform.output_names
    registry = Registry.from_config(ctx.cfg, lake.root)
    mv = registry.new_version(spec.name)
    cache_dir = Storage.from_config(ctx.cfg, lake.root).cache
    progress = ctx.progress
    try:
        with progress.stage(f"DNN on Horovod x{params.num_proc} (Petastorm)") as stage:
            stage.rows = counts.get(("train", 0), 0) + counts.get(("train", 1), 0)
            dnn = train_dnn(
                spark,
                frames["train"],
                frames["validation"],
                len(names),
                params,
                str(cache_dir),
                checkpoint_dir=str(mv.path / "checkpoints"),
            )
        scored: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {"dnn": {}}
        users = {split: split_users(frames[split]) for split in SPLITS}
        with progress.stage("DNN scores of validation and test"):
            for split in SPLITS:
                scored["dnn"][split] = collect_scores(predict_column(spark, frames[split], dnn))
        with progress.stage("MLlib baselines (GBT, logistic regression)"):
            predicted = baselines.fit_predict(
                frames["train"], {s: frames[s] for s in SPLITS}, params.seed, spec.gbt_max_iter
            )
            for algo, frames_by_split in predicted.items():
                scored[algo] = {s: collect_scores(df) for s, df in frames_by_split.items()}
        head = None
        if spec.sequence.enabled:
            with progress.stage(
                f"sequence head on Horovod x{spec.sequence.num_proc} (Petastorm)"
            ) as stage:
                stage.rows = counts.get(("train", 0), 0) + counts.get(("train", 1), 0)
                head = heads.fit_score(
                    spark, lake.read("bronze.events"), data, spec.sequence, str(cache_dir),
                    pos_rate, SPLITS,
                )  # fmt: skip
            scored.update(sequence_candidates(scored["dnn"], users, head))
        choices = calibrate(scored, spec.calibration)
        evaluated, thresholds = calibrated_scores(scored, choices, spec)
        metrics: dict[str, dict[str, dict[str, float]]] = {s: {} for s in SPLITS}
        for algo, by_split in evaluated.items():
            for split in SPLITS:
                y, p = by_split[split]
                metrics[split][algo] = evaluate(y, p, thresholds[algo])
        y_train = np.r_[np.zeros(counts[("train", 0)]), np.ones(counts[("train", 1)])]
        for split in SPLITS:
            metrics[split]["constant"] = constant_baseline(y_train, scored["dnn"][split][0])
        constant = {s: np.full(users[s].size, float(y_train.mean())) for s in SPLITS}
        comparisons = compare_models(
            evaluated,
            constant,
            users,
            [str(m) for m in ctx.cfg.get("evaluation.classifier_metrics")],
            BootstrapSettings.from_config(ctx.cfg),
        )
        with progress.stage("permutation importance on test"):
            importance = permutation_importance(
                frames["test"],
                len(names),
                names,
                lambda df: predict_column(spark, df, dnn),
                seed=params.seed,
                max_rows=spec.importance_rows,
            )
        save_version(
            mv.path,
            dnn,
            transform,
            spec,
            params,
            metrics,
            importance,
            evaluated,
            choices,
            ts_version,
            counts,
            users["test"],
            head,
        )
    except BaseException:
        registry.discard(mv)
        raise
    test_value = metrics["test"]["dnn"][spec.promotion_metric]
    promoted, before = registry.promote_if_not_worse(
        mv, spec.promotion_metric, test_value, spec.promotion_min_delta
    )
    rows = metric_rows(spec, mv.version, ctx.run.run_id, metrics, importance, comparisons)
    write_metrics(lake, rows)
    data.unpersist()
    table = evaluation_table(metrics)
    verdict = "promoted to current" if promoted else "NOT promoted"
    previous = "" if before is None else f"; previous test {spec.promotion_metric} {before:.4f}"
    print(f"\nmodel {spec.name} {mv.version} ({verdict}{previous})")
    print(table)
    print(calibration_summary(choices, metrics))
    print(comparison_table(comparisons["test"], list(comparisons["test"].intervals["dnn"])))
    if f"test:{BLEND}" in comparisons:
        print(
            comparison_table(
                comparisons[f"test:{BLEND}"], list(comparisons["test"].intervals["dnn"])
            )
        )
    top = sorted(importance.items(), key=lambda kv: -kv[1])[:8]
    print(
        "permutation importance (test ROC-AUC drop): " + ", ".join(f"{k} {v:.4f}" for k, v in top)
    )
    ctx.run.rows_read = int(sum(counts.values()))
    ctx.run.rows_written = len(rows)
    for algo, m in metrics["test"].items():
        for name in ("roc_auc", "brier", "ece"):
            ctx.run.metrics[f"test.{algo}.{name}"] = m[name]
    ctx.run.metrics["promoted"] = float(promoted)
    ctx.run.metrics["horovod_seconds"] = dnn.seconds
    if head is not None:
        ctx.run.metrics["sequence_head_seconds"] = head.seconds
        for split, n in head.rows_without_events.items():
            ctx.run.metrics[f"sequence_rows_without_events.{split}"] = float(n)


def save_version(
    path: Path,
    dnn: TrainedDnn,
    transform: FeatureTransform,
    spec: ModelSpec,
    params: Any,
    metrics: dict[str, Any],
    importance: dict[str, float],
    evaluated: Scored,
    choices: dict[str, Choice],
    ts_version: int | None,
    counts: dict[tuple[str, int], int],
    test_users: np.ndarray,
    head: heads.FittedHead | None = None,
) -> None:
    dnn.build().save(path / "model.keras")
    if head is not None:  # evaluated, not used by score: kept so the figures can be reproduced
        np.savez(path / "sequence_head.npz", *head.weights)
        (path / "sequence_items.json").write_text(json.dumps(head.item_ids))
    (path / "transform.json").write_text(transform.to_json())
    calibrator: Calibrator = choices["dnn"].calibrator
    (path / "calibration.json").write_text(calibrator.to_json())
    chosen = {
        algo: {"method": c.calibrator.method, "cv_log_loss": c.cv_log_loss}
        for algo, c in choices.items()
    }
    (path / "metrics.json").write_text(
        json.dumps({**metrics, "importance": importance, "calibration": chosen}, indent=2)
    )
    (path / "params.json").write_text(
        json.dumps(
            {
                "model": spec.name,
                "kind": spec.kind,
                "lookback_days": spec.lookback_days,
                "horizon_days": spec.horizon_days,
                "population": spec.population,
                "calibration": {
                    "method": calibrator.method,
                    "methods": list(spec.calibration.methods),
                    "folds": spec.calibration.folds,
                    "seed": spec.calibration.seed,
                },
                "dnn": params.__dict__,
                "sequence": spec.sequence.__dict__,
                "sequence_history": head.history if head is not None else None,
                "training_set_version": ts_version,
                "code_version": code_version(),
                "trained_at": dt.datetime.now(dt.UTC).isoformat(),
                "rows": {f"{s}.{lab}": n for (s, lab), n in sorted(counts.items())},
                "history": dnn.history,
                "horovod_seconds": dnn.seconds,
                "num_proc": dnn.num_proc,
                "features": transform.output_names,
            },
            indent=2,
            default=str,
        )
    )
    y, p = evaluated["dnn"]["test"]
    # Per-user test scores of every algorithm: later comparisons (BG/NBD in the CDNOW report,
    # other models) pair with them user by user.
    pd.DataFrame(
        {
            "user_id": test_users,
            "label": y,
            **{algo: by_split["test"][1] for algo, by_split in evaluated.items()},
        }
    ).to_csv(path / "predictions_test.csv", index=False)
    lift_table(y, p).to_csv(path / "lift_test.csv", index=False)
    calibration_table(y, p).to_csv(path / "calibration_test.csv", index=False)
    calibration_table(y, evaluated["dnn" + RAW]["test"][1]).to_csv(
        path / "calibration_test_raw.csv", index=False
    )
    pd.DataFrame(
        [{"split": s, "model": a, **m} for s, by in metrics.items() for a, m in by.items()]
    ).to_csv(path / "evaluation.csv", index=False)
    plot_curves(y, {algo: by["test"][1] for algo, by in evaluated.items()}, path)


TRAIN = Job(
    name="train",
    description="Train a model with Horovod on Spark (Petastorm-fed), evaluate against "
    "baselines, register and promote.",
    add_args=add_args,
    body=body,
    # bronze.events: the sequence head's histories, when models.<name>.sequence.enabled
    reads=("gold.training_sets", "gold.model_metrics", "bronze.events"),
    writes=("gold.model_metrics", "registry/*"),
)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return TRAIN.main(argv, spark)
