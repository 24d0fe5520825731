"""Binary classifier evaluation on the driver (numpy/pandas): the churn/propensity `train` job's
evaluation table comparing the DNN with logistic-regression and GBT baselines.

Inputs are 1-D numpy arrays: labels ``y`` in {0, 1} and scores ``p`` (finite reals; the metrics
that read them as probabilities, log loss, Brier and calibration, also require [0, 1]).
Invalid input raises ``ValueError`` naming the problem.

Definitions worth knowing:

- ``roc_auc`` is the Mann-Whitney U statistic: tied scores get their average rank, so a tie
  between a positive and a negative counts one half.
- ``pr_auc`` is average precision, ``sum_n (R_n - R_{n-1}) P_n`` over the distinct scores
  taken as thresholds from highest to lowest (equal scores enter together, no interpolation).
- A user is predicted positive when ``p >= threshold``; precision with no predicted positive
  is 0, and so is F1 when precision and recall are both 0.
- ``ece`` (expected calibration error) is ``sum_b (n_b / n) |mean_p_b - rate_b|`` over the
  equal-width bins of :func:`calibration_table` (10 by default; empty bins count 0): the
  average gap, weighted by users, between the predicted probability and the observed rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]

_BUDGET_EPS = 1e-9
ECE_BINS = 10  # equal-width bins of [0, 1] for the expected calibration error


def _labels(y: Any, name: str = "y") -> IntArray:
    """``y`` as a 1-D int array of 0/1, or a ValueError naming the problem."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric 0/1 labels, got dtype {arr.dtype}")
    if not np.isin(arr, (0, 1)).all():
        bad = np.unique(arr[~np.isin(arr, (0, 1))])[:5].tolist()
        raise ValueError(f"{name} must contain only 0 and 1, found {bad}")
    return arr.astype(np.int64)


def _check(y: Any, p: Any, probabilities: bool = False) -> tuple[IntArray, FloatArray]:
    """Validated ``(y, p)``: same length, 0/1 labels, finite scores (in [0, 1] if asked)."""
    labels = _labels(y)
    scores = np.asarray(p)
    if scores.ndim != 1:
        raise ValueError(f"p must be 1-D, got shape {scores.shape}")
    if scores.dtype.kind not in "biuf":
        raise ValueError(f"p must be numeric scores, got dtype {scores.dtype}")
    if scores.shape != labels.shape:
        raise ValueError(f"y and p differ in length: {labels.size} labels, {scores.size} scores")
    scores = scores.astype(np.float64)
    if not np.isfinite(scores).all():
        raise ValueError(f"p has {int((~np.isfinite(scores)).sum())} NaN or infinite score(s)")
    if probabilities and ((scores < 0).any() or (scores > 1).any()):
        raise ValueError(
            f"p must be probabilities in [0, 1], found range [{scores.min()}, {scores.max()}]"
        )
    return labels, scores


def _both_classes(y: IntArray, what: str) -> tuple[int, int]:
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"{what} needs both classes")
    return n_pos, n_neg


def _average_ranks(p: FloatArray) -> FloatArray:
    """1-based ranks of ``p`` ascending, ties sharing their average rank."""
    order = np.argsort(p, kind="stable")
    sorted_p = p[order]
    # Start index of each run of equal values, and the run each sorted element belongs to.
    starts = np.flatnonzero(np.r_[True, sorted_p[1:] != sorted_p[:-1]])
    ends = np.r_[starts[1:], sorted_p.size]
    run_rank = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 .. ends
    run_of = np.cumsum(np.r_[True, sorted_p[1:] != sorted_p[:-1]]) - 1
    ranks = np.empty(p.size, dtype=np.float64)
    ranks[order] = run_rank[run_of]
    return ranks


def _threshold_counts(y: IntArray, p: FloatArray) -> tuple[FloatArray, IntArray, IntArray]:
    """Distinct scores descending with cumulative TP and FP when each is the threshold."""
    order = np.argsort(-p, kind="stable")
    sp, sy = p[order], y[order]
    last_of_run = np.r_[sp[1:] != sp[:-1], True]
    tp = np.cumsum(sy)[last_of_run]
    fp = np.cumsum(1 - sy)[last_of_run]
    return sp[last_of_run], tp, fp


def roc_auc(y: Any, p: Any) -> float:
    """Area under the ROC curve (Mann-Whitney U; ties count one half)."""
    labels, scores = _check(y, p)
    n_pos, n_neg = _both_classes(labels, "roc_auc")
    rank_sum = float(_average_ranks(scores)[labels == 1].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def pr_auc(y: Any, p: Any) -> float:
    """Average precision: ``sum (R_n - R_{n-1}) P_n`` over distinct score thresholds."""
    labels, scores = _check(y, p)
    n_pos = int(labels.sum())
    if n_pos == 0:
        raise ValueError("pr_auc needs at least one positive")
    _, tp, fp = _threshold_counts(labels, scores)
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def log_loss(y: Any, p: Any, eps: float = 1e-15) -> float:
    """Mean negative log-likelihood, probabilities clipped to ``[eps, 1 - eps]``."""
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps}")
    labels, scores = _check(y, p, probabilities=True)
    q = np.clip(scores, eps, 1 - eps)
    return float(-np.mean(labels * np.log(q) + (1 - labels) * np.log(1 - q)))


def brier(y: Any, p: Any) -> float:
    """Mean squared difference between probability and label."""
    labels, scores = _check(y, p, probabilities=True)
    return float(np.mean((scores - labels) ** 2))


def precision_recall_f1(y: Any, p: Any, threshold: float) -> tuple[float, float, float]:
    """Precision, recall and F1 when ``p >= threshold`` is predicted positive."""
    labels, scores = _check(y, p)
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    pred = scores >= threshold
    tp = int((pred & (labels == 1)).sum())
    n_pred = int(pred.sum())
    n_pos = int(labels.sum())
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_pos if n_pos else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def choose_threshold(
    y: Any,
    p: Any,
    strategy: Literal["max_f1", "budget"] = "max_f1",
    budget: float = 0.1,
) -> float:
    """Decision threshold picked on validation data.

    ``max_f1``: the observed score maximising F1 (the highest such score on a tie, i.e. the
    fewest contacts). ``budget``: the score of the ``floor(budget * n)``-th highest user
    (at least one), so the top ``budget`` share is contacted; users tied with it are also
    flagged, so ties can push the contacted share slightly above the budget.
    """
    labels, scores = _check(y, p)
    if strategy == "max_f1":
        n_pos = int(labels.sum())
        if n_pos == 0:
            raise ValueError("choose_threshold(max_f1) needs at least one positive")
        thresholds, tp, fp = _threshold_counts(labels, scores)
        f1 = 2 * tp / (tp + fp + n_pos)  # 2PR/(P+R) rewritten with counts
        return float(thresholds[int(np.argmax(f1))])  # first max = highest threshold
    if strategy == "budget":
        if not 0 < budget <= 1:
            raise ValueError(f"budget must be a share in (0, 1], got {budget}")
        k = max(1, math.floor(budget * scores.size + _BUDGET_EPS))
        return float(np.sort(scores)[::-1][k - 1])
    raise ValueError(f"unknown threshold strategy {strategy!r}; expected 'max_f1' or 'budget'")


def _decile_order(p: FloatArray) -> IntArray:
    """Indices by score descending, ties kept in input order (deterministic boundaries)."""
    return np.argsort(-p, kind="stable").astype(np.int64)


def lift_table(y: Any, p: Any, bins: int = 10) -> pd.DataFrame:
    """Lift and cumulative gains per score bin, ``decile`` 1 holding the highest scores.

    Users are sorted by score descending, ties by input position, then split into ``bins``
    groups of near-equal size (the first ``n % bins`` groups get one extra user).
    """
    labels, scores = _check(y, p)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if labels.size < bins:
        raise ValueError(
            f"lift_table needs at least {bins} rows for {bins} bins, got {labels.size}"
        )
    n_pos_total = int(labels.sum())
    if n_pos_total == 0:
        raise ValueError("lift_table needs at least one positive (lift divides by the base rate)")
    base_rate = n_pos_total / labels.size
    groups = np.array_split(labels[_decile_order(scores)], bins)
    n = np.array([g.size for g in groups], dtype=np.int64)
    positives = np.array([int(g.sum()) for g in groups], dtype=np.int64)
    rate = positives / n
    cum_n = np.cumsum(n)
    cum_pos = np.cumsum(positives)
    return pd.DataFrame(
        {
            "decile": np.arange(1, bins + 1, dtype=np.int64),
            "n": n,
            "positives": positives,
            "rate": rate,
            "lift": rate / base_rate,
            "cum_gains": cum_pos / n_pos_total,
            "cum_lift": (cum_pos / cum_n) / base_rate,
        }
    )


def calibration_table(y: Any, p: Any, bins: int = 10) -> pd.DataFrame:
    """Reliability table over equal-width bins of [0, 1]; bin ``b`` (1-based) holds
    ``[(b-1)/bins, b/bins)``, the last one also 1.0. Empty bins have NaN means."""
    labels, scores = _check(y, p, probabilities=True)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    idx = np.minimum(np.floor(scores * bins).astype(np.int64), bins - 1)
    n = np.bincount(idx, minlength=bins)
    sum_p = np.bincount(idx, weights=scores, minlength=bins)
    sum_y = np.bincount(idx, weights=labels.astype(np.float64), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(n > 0, sum_p / n, np.nan)
        observed = np.where(n > 0, sum_y / n, np.nan)
    edges = np.arange(bins + 1, dtype=np.float64) / bins
    return pd.DataFrame(
        {
            "bin": np.arange(1, bins + 1, dtype=np.int64),
            "lower": edges[:-1],
            "upper": edges[1:],
            "n": n.astype(np.int64),
            "mean_predicted": mean_p,
            "observed_rate": observed,
        }
    )


def expected_calibration_error(y: Any, p: Any, bins: int = ECE_BINS) -> float:
    """``sum_b (n_b / n) |mean_predicted_b - observed_rate_b|`` over the equal-width bins of
    :func:`calibration_table`; 0 for perfectly calibrated probabilities."""
    table = calibration_table(y, p, bins)
    filled = table[table["n"] > 0]
    gaps = (filled["mean_predicted"] - filled["observed_rate"]).abs().to_numpy(dtype=np.float64)
    weights = filled["n"].to_numpy(dtype=np.float64)
    return float(np.sum(weights * gaps) / weights.sum())


def precision_at_top(y: Any, p: Any, share: float) -> float:
    """Share of positives among the ``max(1, floor(share * n))`` highest scores (ties broken
    by position, so the count is exact): the precision of an alert list of that size."""
    labels, scores = _check(y, p)
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    k = max(1, math.floor(share * scores.size + _BUDGET_EPS))
    top = np.argsort(-scores, kind="stable")[:k]
    return float(labels[top].mean())


def evaluate(y: Any, p: Any, threshold: float) -> dict[str, float]:
    """All metrics of one model on one set.

    ``positive_rate`` is the share of users flagged (``p >= threshold``), ``base_rate`` the
    share of actual positives; ``ece`` uses :data:`ECE_BINS` equal-width bins.
    """
    labels, scores = _check(y, p, probabilities=True)
    precision, recall, f1 = precision_recall_f1(labels, scores, threshold)
    return {
        "roc_auc": roc_auc(labels, scores),
        "pr_auc": pr_auc(labels, scores),
        "log_loss": log_loss(labels, scores),
        "brier": brier(labels, scores),
        "ece": expected_calibration_error(labels, scores),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "threshold": float(threshold),
        "positive_rate": float(np.mean(scores >= threshold)),
        "base_rate": float(labels.mean()),
        "n": float(labels.size),
    }


def constant_baseline(y_train: Any, y_eval: Any) -> dict[str, float]:
    """Metrics of always predicting the training base rate (AUC 0.5, everyone flagged)."""
    rate = float(_labels(y_train, "y_train").mean())
    labels = _labels(y_eval, "y_eval")
    return evaluate(labels, np.full(labels.size, rate), threshold=rate)


def _roc_points(y: IntArray, p: FloatArray) -> tuple[FloatArray, FloatArray]:
    _, tp, fp = _threshold_counts(y, p)
    n_pos, n_neg = _both_classes(y, "roc curve")
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]


def _gains_points(y: IntArray, p: FloatArray) -> tuple[FloatArray, FloatArray]:
    sy = y[_decile_order(p)]
    return (
        np.r_[0.0, np.arange(1, y.size + 1) / y.size],
        np.r_[0.0, np.cumsum(sy) / max(int(y.sum()), 1)],
    )


def plot_curves(y: Any, scores: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """ROC, precision-recall, cumulative-gains and reliability plots, one line per model.

    Writes ``roc.png``, ``pr.png``, ``lift.png`` and ``calibration.png`` into ``out_dir``
    and returns their paths. Figures are drawn on the Agg canvas directly, so pyplot's
    global figure registry and backend are never touched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not scores:
        raise ValueError("plot_curves needs at least one model's scores")
    labels = _labels(y)
    checked = {name: _check(labels, s, probabilities=True)[1] for name, s in scores.items()}
    n_pos, _ = _both_classes(labels, "plot_curves")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def new_axes(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Any]:
        fig = Figure(figsize=(6, 5), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        return fig, ax

    paths: list[Path] = []

    def save(fig: Figure, ax: Any, name: str) -> None:
        ax.legend(loc="best", fontsize="small")
        path = out_dir / name
        fig.savefig(path, format="png", bbox_inches="tight")
        paths.append(path)

    fig, ax = new_axes("ROC", "false positive rate", "true positive rate")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="random (AUC 0.500)")
    for name, s in checked.items():
        fpr, tpr = _roc_points(labels, s)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(labels, s):.3f})")
    save(fig, ax, "roc.png")

    fig, ax = new_axes("Precision-recall", "recall", "precision")
    ax.axhline(n_pos / labels.size, color="k", ls="--", lw=1, label="random (base rate)")
    for name, s in checked.items():
        _, tp, fp = _threshold_counts(labels, s)
        ax.step(
            np.r_[0.0, tp / n_pos],
            np.r_[1.0, tp / (tp + fp)],
            where="pre",
            label=f"{name} (AP {pr_auc(labels, s):.3f})",
        )
    save(fig, ax, "pr.png")

    fig, ax = new_axes("Cumulative gains", "share of users contacted", "share of positives")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="random")
    for name, s in checked.items():
        ax.plot(*_gains_points(labels, s), label=name)
    save(fig, ax, "lift.png")

    fig, ax = new_axes("Reliability", "mean predicted probability", "observed rate")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfectly calibrated")
    for name, s in checked.items():
        table = calibration_table(labels, s)
        table = table[table["n"] > 0]
        ax.plot(table["mean_predicted"], table["observed_rate"], "o-", label=name)
    save(fig, ax, "calibration.png")
    return paths
