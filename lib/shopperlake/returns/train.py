"""``train --model returns`` (job ``train_returns``): the return model on the shared core.

On the split of ``gold.return_training_set``: the feature transform fitted on train rows, the
DNN trained with Horovod on Spark executors fed by Petastorm (:mod:`shopperlake.churn.dnn`),
MLlib GBT and logistic regression on the same features, each calibrated on validation
(platt or isotonic by cross-validated log loss). Baselines on the same rows: the training
base rate (constant), the customer's past return rate, the item's smoothed past return rate.

Reported per split, with 95 % intervals from a *customer-level* bootstrap (one customer's
lines move together) and paired differences of the DNN against every other scorer: line-level
ROC-AUC, PR-AUC, precision among the top ``returns.top_share`` lines, Brier; order-level
ROC-AUC (an order is returned when any line is; its score is the max over its lines).

With ``returns.sequence.enabled`` two more candidates join on the same lines: ``sequence``, the
SASRec encoder (:mod:`shopperlake.seqmodel.heads`) over the customer's events strictly before
the purchase day with each of the day's lines as a query item (one row per customer and
purchase day, or per ``lines_per_row`` of its lines; a score and a label per line); and
``blend``, the mean of the DNN's and the head's raw scores. Both are calibrated like the
others and paired with the DNN; the blend is also paired with the head alone.

``ensemble`` (``returns.ensemble``, default the DNN and the GBT) is the mean of its members'
calibrated probabilities on the same lines, paired with the DNN and with each member.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from shopperlake.churn import baselines
from shopperlake.churn.dnn import TrainedDnn, predict_column, train_dnn
from shopperlake.churn.features import FeatureTransform
from shopperlake.churn.train import BLEND, RAW, SEQUENCE, calibrate, code_version, with_weights
from shopperlake.core.cli import Job, JobContext
from shopperlake.core.errors import InputError
from shopperlake.core.storage import Storage
from shopperlake.returns.spec import MODEL, ReturnsSpec, returns_spec
from shopperlake.returns.training_set import TABLE
from shopperlake.seqmodel import heads
from shopperlake.training.bootstrap import metric_stat
from shopperlake.training.calibration import Choice
from shopperlake.training.metrics import (
    brier,
    calibration_table,
    choose_threshold,
    evaluate,
    expected_calibration_error,
    lift_table,
    plot_curves,
    pr_auc,
    precision_at_top,
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
KEY_COLS = ["line_id", "order_id", "user_id", "label"]
# rule baselines: a feature of the row read as a score (missing history -> the base rate)
RULES = {"customer_rate": "cust_return_rate", "item_rate": "item_return_rate"}
ENSEMBLE = "ensemble"


def latest_as_of(data: DataFrame) -> dt.date:
    row = data.agg(F.max("as_of_date").alias("d")).first()
    if row is None or row["d"] is None:
        raise InputError(f"{TABLE} is empty: run build_training_set --model returns first")
    return row["d"]


def keyed(df: DataFrame, score: str = "score") -> pd.DataFrame:
    """``line_id, order_id, user_id, label, score`` in one fixed row order (by line id), so
    every scorer's arrays pair row by row."""
    return df.select(*KEY_COLS, F.col(score).alias("score")).orderBy("line_id").toPandas()


def order_level(keys: pd.DataFrame, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order label = any line returned, order score = max over lines, order's customer),
    orders sorted by id."""
    frame = pd.DataFrame(
        {"order_id": keys["order_id"].fillna(keys["line_id"]), "user_id": keys["user_id"],
         "label": keys["label"].to_numpy(), "score": p}
    )  # fmt: skip
    g = frame.groupby("order_id", sort=True).agg(
        label=("label", "max"), score=("score", "max"), user_id=("user_id", "first")
    )
    return g["label"].to_numpy(dtype=int), g["score"].to_numpy(dtype=float), g["user_id"].to_numpy()


def head_rows(data: DataFrame, lines_per_row: int) -> DataFrame:
    """The sequence head's rows (user_id, cutoff, split, query_ids, query_items,
    query_label_list): a customer's purchase-day lines (ids, items, labels, by line id) in
    chunks of at most ``lines_per_row``, each chunk with the customer's history up to
    ``cutoff``, the day before the purchase day (strictly before it, like the line
    features)."""
    keys = ["user_id", "cutoff", "split"]
    lines = data.select(
        "line_id", "item_id", "label", "user_id", "split",
        F.date_sub(F.to_date("ts"), 1).alias("cutoff"),
    )  # fmt: skip
    n = F.row_number().over(Window.partitionBy(*keys).orderBy("line_id")) - 1
    chunked = lines.withColumn("chunk", F.floor(n / lines_per_row))
    ordered = F.sort_array(F.collect_list(F.struct("line_id", "item_id", "label")))
    return (
        chunked.groupBy(*keys, "chunk")
        .agg(ordered.alias("q"))
        .select(
            *keys,
            F.col("q.line_id").alias("query_ids"),
            F.col("q.item_id").alias("query_items"),
            F.col("q.label").alias("query_label_list"),
        )
    )


def head_line_scores(
    keys: dict[str, pd.DataFrame], head: heads.FittedHead
) -> dict[str, np.ndarray]:
    """Per split, the head's raw score of each line, in the lines' order of ``keys`` (by line
    id); the head must have scored exactly those lines, with the same labels."""
    out = {}
    for split, key in keys.items():
        ids = head.ids.get(split)
        if ids is None or not np.array_equal(ids, key["line_id"].to_numpy(dtype=object)):
            raise InputError(f"the sequence head's {split} lines differ from the scored lines")
        labels, p = head.scores[split]
        if not np.array_equal(labels, key["label"].to_numpy(dtype=int)):
            raise InputError(f"the sequence head's {split} labels differ from the scored lines")
        out[split] = p
    return out


def line_metrics(spec: ReturnsSpec) -> dict[str, Callable[[Any, Any], float]]:
    return {
        "roc_auc": roc_auc,
        "pr_auc": pr_auc,
        f"precision_top{round(spec.top_share * 100)}pct": partial(
            precision_at_top, share=spec.top_share
        ),
        "brier": brier,
        "ece": expected_calibration_error,
    }


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=MODEL, choices=[MODEL])
    parser.add_argument("--num-proc", dest="num_proc", type=int, default=None,
                        help="Horovod processes (default returns.dnn.num_proc)")  # fmt: skip


def body(ctx: JobContext) -> None:
    spec = returns_spec(ctx.cfg)
    params = spec.dnn
    if ctx.args.num_proc:
        params = type(params)(**{**params.__dict__, "num_proc": ctx.args.num_proc})
    lake, spark = ctx.lake, ctx.spark
    ts_version = lake.version(TABLE)
    table = lake.read(TABLE)
    as_of = ctx.as_of or latest_as_of(table)
    data = table.where(F.col("as_of_date") == F.lit(as_of)).cache()
    counts = {
        (r["split"], r["label"]): r["count"]
        for r in data.groupBy("split", "label").count().collect()
    }
    for split in ("train", *SPLITS):
        if not (counts.get((split, 0)) and counts.get((split, 1))):
            raise InputError(
                f"return training set as of {as_of} has no {split} rows of both classes "
                f"(counts {counts}): rebuild it with another --as-of/--test-start or more data"
            )
    n_train = counts[("train", 0)] + counts[("train", 1)]
    pos_rate = counts[("train", 1)] / n_train
    train = data.where("split = 'train'")
    transform = FeatureTransform.fit(train, True, spec.categorical_features, spec.vocab_size)
    names = transform.output_names
    rules = {
        algo: F.coalesce(F.col("numeric")[feature], F.lit(pos_rate)).alias(algo)
        for algo, feature in RULES.items()
    }
    frames = {
        split: with_weights(transform.apply(data.where(F.col("split") == split)), pos_rate).select(
            *KEY_COLS, "features", "weight", *rules.values()
        )
        for split in ("train", *SPLITS)
    }
    registry = Registry.from_config(ctx.cfg, lake.root)
    mv = registry.new_version(MODEL)
    cache_dir = Storage.from_config(ctx.cfg, lake.root).cache
    try:
        dnn = train_dnn(spark, frames["train"], frames["validation"], len(names), params,
                        str(cache_dir), checkpoint_dir=str(mv.path / "checkpoints"))  # fmt: skip
        keys: dict[str, pd.DataFrame] = {}
        scored: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {"dnn": {}}
        rule_scores: dict[str, dict[str, np.ndarray]] = {a: {} for a in RULES}
        for split in SPLITS:
            pdf = keyed(predict_column(spark, frames[split], dnn))
            keys[split] = pdf[KEY_COLS]
            scored["dnn"][split] = (pdf["label"].to_numpy(dtype=int), pdf["score"].to_numpy())
            for algo in RULES:
                rule_scores[algo][split] = keyed(frames[split], algo)["score"].to_numpy()
        mllib = baselines.fit(frames["train"], params.seed, spec.gbt_max_iter,
                              spec.gbt_class_weights)  # fmt: skip
        for algo, model in mllib.items():
            scored[algo] = {}
            for split in SPLITS:
                pdf = keyed(baselines.predict(model, frames[split]))
                scored[algo][split] = (pdf["label"].to_numpy(dtype=int), pdf["score"].to_numpy())
        head = None
        if spec.sequence.enabled:
            day_rows = head_rows(data, spec.head_lines_per_row)
            head = heads.fit_score(
                spark, lake.read("bronze.events"), day_rows, spec.sequence, str(cache_dir),
                pos_rate, SPLITS, queries=spec.head_lines_per_row,
            )  # fmt: skip
            by_line = head_line_scores(keys, head)
            scored[SEQUENCE], scored[BLEND] = {}, {}
            for split, (y, p_dnn) in scored["dnn"].items():
                scored[SEQUENCE][split] = (y, by_line[split])
                scored[BLEND][split] = (y, (p_dnn + by_line[split]) / 2.0)
        choices = calibrate(scored, spec.calibration)
        evaluated = calibrated(scored, choices)
        if spec.ensemble:
            evaluated[ENSEMBLE] = ensemble(evaluated, spec.ensemble)
        for algo in RULES:
            evaluated[algo] = {s: (scored["dnn"][s][0], rule_scores[algo][s]) for s in SPLITS}
        for split in SPLITS:
            n = scored["dnn"][split][0].size
            evaluated.setdefault("constant", {})[split] = (
                scored["dnn"][split][0],
                np.full(n, pos_rate),
            )
        metrics, comparisons = measure(
            evaluated, keys, spec, BootstrapSettings.from_config(ctx.cfg)
        )
        save_version(mv.path, dnn, transform, spec, params, metrics, evaluated, choices,
                     ts_version, as_of, counts, keys["test"], head)  # fmt: skip
        save_members(mv.path, spec, mllib, choices)
    except BaseException:
        registry.discard(mv)
        raise
    key = promotion_key(spec)
    test_value = metrics[key[0]][key[1]][key[2]][spec.promotion_metric]
    promoted, before = registry.promote_if_not_worse(
        mv, spec.promotion_metric, test_value, 0.0, key
    )
    now = dt.datetime.now(dt.UTC)
    rows = [
        row
        for comparison in comparisons.values()
        for row in comparison_rows(MODEL, mv.version, comparison, ctx.run.run_id, now)
    ]
    with_ci = {
        (algo, metric)
        for comparison in comparisons.values()
        for algo, by_metric in comparison.intervals.items()
        for metric in by_metric
    }
    rows += [
        metric_row(MODEL, mv.version, algo, split, name, value, ctx.run.run_id, now)
        for split in SPLITS
        for algo, values in metrics[split]["line"].items()
        for name, value in values.items()
        if split != "test" or (algo, name) not in with_ci
    ]
    rows += [
        metric_row(MODEL, mv.version, algo, split, "order_roc_auc", v["roc_auc"], ctx.run.run_id,
                   now)
        for split in SPLITS
        for algo, v in metrics[split]["order"].items()
        if split != "test"
    ]  # fmt: skip
    write_metrics(lake, rows)
    data.unpersist()
    verdict = "promoted to current" if promoted else "NOT promoted"
    previous = "" if before is None else f"; previous test {spec.promotion_metric} {before:.4f}"
    print(
        f"\nmodel {MODEL} {mv.version} ({verdict} on the {spec.score_with}'s test "
        f"{spec.promotion_metric} {test_value:.4f}{previous}); training set as of {as_of}"
    )
    print(report(comparisons))
    ctx.run.rows_read = int(sum(counts.values()))
    ctx.run.rows_written = len(rows)
    for algo, m in metrics["test"]["line"].items():
        ctx.run.metrics[f"test.{algo}.roc_auc"] = m["roc_auc"]
    ctx.run.metrics["promoted"] = float(promoted)
    ctx.run.metrics["horovod_seconds"] = dnn.seconds
    if head is not None:
        ctx.run.metrics["sequence_head_seconds"] = head.seconds


Scored = dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]


def promotion_key(spec: ReturnsSpec) -> tuple[str, str, str]:
    """Where ``metrics.json`` holds the scorer's test figures (the registry compares them)."""
    return ("test", "line", spec.score_with)


def save_members(
    path: Path, spec: ReturnsSpec, mllib: dict[str, Any], choices: dict[str, Choice]
) -> None:
    """What ``score`` needs for the ensemble: each MLlib member (``<algo>.mllib``) and every
    member's calibrator (``calibration_<algo>.json``; the DNN's is ``calibration.json``)."""
    if spec.score_with != ENSEMBLE:
        return
    for algo in spec.ensemble:
        if algo in mllib:
            baselines.save(mllib[algo], path / f"{algo}.mllib")
        if algo != "dnn":
            (path / f"calibration_{algo}.json").write_text(choices[algo].calibrator.to_json())


def calibrated(scored: Scored, choices: dict[str, Choice]) -> Scored:
    """Calibrated (``<algo>``: out-of-fold on validation) and raw (``<algo>_raw``) scores."""
    out: Scored = {}
    for algo, by_split in scored.items():
        choice = choices[algo]
        (y_val, _), (y_test, p_test) = by_split["validation"], by_split["test"]
        out[algo] = {
            "validation": (y_val, choice.out_of_fold),
            "test": (y_test, choice.calibrator.apply(p_test)),
        }
        out[algo + RAW] = by_split
    return out


def ensemble(evaluated: Scored, members: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per split, the mean of the ``members``' calibrated probabilities (validation: their
    out-of-fold ones), which score the same lines in the same order."""
    missing = [m for m in members if m not in evaluated]
    if missing:
        raise InputError(f"returns.ensemble: no scores from {missing} (have {sorted(evaluated)})")
    out = {}
    for split in evaluated[members[0]]:
        y = evaluated[members[0]][split][0]
        if any(not np.array_equal(evaluated[m][split][0], y) for m in members):
            raise InputError(f"returns.ensemble: the members' {split} rows differ")
        out[split] = (y, np.mean([evaluated[m][split][1] for m in members], axis=0))
    return out


def measure(
    evaluated: Scored, keys: dict[str, pd.DataFrame], spec: ReturnsSpec,
    settings: BootstrapSettings,
) -> tuple[dict[str, dict[str, dict[str, dict[str, float]]]], dict[str, Comparison]]:  # fmt: skip
    """Point metrics per split, level and scorer; on the test split also the bootstrapped
    comparisons of the calibrated scorers (the DNN against every other one; customers
    resampled whole). Raw scores rank exactly like their calibrated versions, so they get
    point figures only."""
    metrics: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    comparisons: dict[str, Comparison] = {}
    fns = line_metrics(spec)
    top = next(name for name in fns if name.startswith("precision_top"))
    for split in SPLITS:
        y = evaluated["dnn"][split][0]
        line_stats, order_stats = {}, {}
        metrics[split] = {"line": {}, "order": {}}
        for algo, by_split in evaluated.items():
            p = by_split[split][1]
            y_val, p_val = by_split["validation"]
            threshold = choose_threshold(y_val, p_val, "budget", spec.top_share)
            metrics[split]["line"][algo] = {
                **evaluate(y, np.clip(p, 0.0, 1.0), threshold),
                top: fns[top](y, p),
            }
            if algo.endswith(RAW):
                continue
            oy, op, _ = order_level(keys[split], p)
            metrics[split]["order"][algo] = {"roc_auc": roc_auc(oy, op)}
            line_stats[algo] = {m: metric_stat(fn, y, p) for m, fn in fns.items()}
            order_stats[algo] = {"order_roc_auc": metric_stat(roc_auc, oy, op)}
        if split != "test":
            continue
        users = keys[split]["user_id"].to_numpy()
        comparisons["line"] = compare(line_stats, y.size, "dnn", split, settings, users)
        oy, _, order_users = order_level(keys[split], evaluated["dnn"][split][1])
        comparisons["order"] = compare(order_stats, oy.size, "dnn", split, settings, order_users)
        # the blend against the head alone; the ensemble against each of its members
        paired = {BLEND: (SEQUENCE,), ENSEMBLE: tuple(spec.ensemble)}
        for combined, parts in paired.items():
            if combined in line_stats and all(a in line_stats for a in parts):
                group = {a: line_stats[a] for a in (combined, *parts)}
                versus = compare(group, y.size, combined, split, settings, users)
                comparisons[f"line:{combined}"] = Comparison(
                    combined, split, {}, versus.differences
                )
    return metrics, comparisons


def report(comparisons: dict[str, Comparison]) -> str:
    parts = []
    for name in ("line", "order"):
        c = comparisons[name]
        parts.append(f"[{name} level]\n" + comparison_table(c, list(c.intervals["dnn"])))
    names = list(comparisons["line"].intervals["dnn"])
    for combined in (BLEND, ENSEMBLE):
        if f"line:{combined}" in comparisons:
            table = comparison_table(comparisons[f"line:{combined}"], names)
            parts.append(f"[line level, {combined}]\n" + table)
    return "\n".join(parts)


def save_version(
    path: Path, dnn: TrainedDnn, transform: FeatureTransform, spec: ReturnsSpec, params: Any,
    metrics: dict[str, Any], evaluated: Scored, choices: dict[str, Choice],
    ts_version: int | None, as_of: dt.date, counts: dict[tuple[str, int], int],
    test_keys: pd.DataFrame, head: heads.FittedHead | None = None,
) -> None:  # fmt: skip
    dnn.build().save(path / "model.keras")
    if head is not None:  # the head's weights and item vocabulary (score does not use them)
        np.savez(path / "sequence_head.npz", *head.weights)
        (path / "sequence_items.json").write_text(json.dumps(head.item_ids))
    (path / "transform.json").write_text(transform.to_json())
    (path / "calibration.json").write_text(choices["dnn"].calibrator.to_json())
    (path / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (path / "params.json").write_text(
        json.dumps(
            {
                "model": MODEL,
                "horizon_days": spec.horizon_days,
                "training_set_as_of": as_of,
                "training_set_version": ts_version,
                "calibration": {a: c.calibrator.method for a, c in choices.items()},
                "dnn": params.__dict__,
                "sequence": spec.sequence.__dict__,
                "ensemble": list(spec.ensemble),
                "score_with": spec.score_with,
                "sequence_history": head.history if head is not None else None,
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
    pd.DataFrame(
        {**{c: test_keys[c] for c in ("line_id", "order_id", "user_id")}, "label": y,
         **{algo: by["test"][1] for algo, by in evaluated.items()}}
    ).to_csv(path / "predictions_test.csv", index=False)  # fmt: skip
    lift_table(y, p).to_csv(path / "lift_test.csv", index=False)
    calibration_table(y, p).to_csv(path / "calibration_test.csv", index=False)
    plot_curves(y, {a: by["test"][1] for a, by in evaluated.items() if not a.endswith(RAW)}, path)


TRAIN_RETURNS = Job(
    name="train_returns",
    description="Train the return model (DNN with Horovod on Spark, Petastorm-fed) against "
    "GBT, logistic regression and rule baselines; customer-level bootstrap; register.",
    add_args=add_args,
    body=body,
    # bronze.events: the sequence head's histories, when returns.sequence.enabled
    reads=(TABLE, "gold.model_metrics", "bronze.events"),
    writes=("gold.model_metrics", "registry/*"),
)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return TRAIN_RETURNS.main(argv, spark)
