"""The detectors against planted truth (``generate --abuse-share``: ``truth/users``,
``truth/feed``), per anomaly type, with bootstrap intervals over users.

Users: everyone scored (an event in the window) plus every planted user (unscored: score 0).
For type T, the positives are the users planted with T, everyone else is a negative.

* ``pr_auc``: average precision of the type's score;
* ``precision_at_k``: the share planted among the :data:`K` highest scores (an analyst's
  first page);
* ``precision``: the share planted among the type's alerts (at most the alert budget,
  ``ceil(budget × scored users)``);
* ``recall``: the share of the planted users that are alerted;
* ``fpr``: the share of normal users (planted with nothing at all) alerted for T.

Feed outages: every judged source × type × day is one case, positive where the truth lists
its date and event type; the score is the shortfall ``max(0, 1 - observed / expected)``
(``missing`` scores 1, no baseline scores 0).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from shopperlake.anomalies.users import ANOMALY_TYPES
from shopperlake.training.bootstrap import (
    IndexStat,
    Interval,
    interval,
    metric_stat,
    paired_difference,
)
from shopperlake.training.metrics import pr_auc
from shopperlake.training.model_metrics import BootstrapSettings

METRICS = ("pr_auc", "precision_at_k", "precision", "recall", "fpr")
K = 25


def budget_k(budget: float, n_scored: int) -> int:
    return max(1, math.ceil(budget * n_scored - 1e-9))


def user_cases(
    scores: pd.DataFrame, alerts: pd.DataFrame, scored: pd.Series, truth: pd.DataFrame
) -> pd.DataFrame:
    """One row per user: ``planted`` (the type or None) and per type ``score_<T>`` and
    ``alert_<T>``. ``scores``: user_id, anomaly_type, score; ``alerts``: user_id,
    anomaly_type; ``truth``: user_id, anomaly_type."""
    users = pd.Index(pd.concat([scored, truth["user_id"]]).unique(), name="user_id")
    out = pd.DataFrame(index=users)
    out["planted"] = truth.drop_duplicates("user_id").set_index("user_id")["anomaly_type"]
    for t in ANOMALY_TYPES:
        s = scores[scores["anomaly_type"] == t].set_index("user_id")["score"]
        out[f"score_{t}"] = s.reindex(users).fillna(0.0).to_numpy()
        alerted = set(alerts.loc[alerts["anomaly_type"] == t, "user_id"])
        out[f"alert_{t}"] = users.isin(list(alerted))
    return out.reset_index()


def type_stats(cases: pd.DataFrame, anomaly_type: str, k: int = K) -> dict[str, Any]:
    """Index statistics (for :func:`interval`) of one type on ``cases``."""
    y = (cases["planted"] == anomaly_type).to_numpy().astype(np.int64)
    p = cases[f"score_{anomaly_type}"].to_numpy()
    alert = cases[f"alert_{anomaly_type}"].to_numpy()
    normal = cases["planted"].isna().to_numpy()

    def precision_at_k(idx: np.ndarray) -> float:
        top = idx[np.argsort(-p[idx], kind="stable")[:k]]
        return float(y[top].mean())

    def precision(idx: np.ndarray) -> float:
        flagged = alert[idx]
        return float(y[idx][flagged].mean()) if flagged.any() else 0.0

    def recall(idx: np.ndarray) -> float:
        pos = y[idx] == 1
        if not pos.any():
            raise ValueError("no planted user in the resample")
        return float(alert[idx][pos].mean())

    def fpr(idx: np.ndarray) -> float:
        return float(alert[idx][normal[idx]].mean())

    return {
        "pr_auc": lambda idx: pr_auc(y[idx], p[idx]),
        "precision_at_k": precision_at_k,
        "precision": precision,
        "recall": recall,
        "fpr": fpr,
        "positives": int(y.sum()),
    }


def evaluate_users(cases: pd.DataFrame, boot: BootstrapSettings) -> dict[str, dict[str, Any]]:
    """Per type present in the truth: each metric's bootstrap interval, and the positives."""
    out: dict[str, dict[str, Any]] = {}
    n = len(cases)
    for t in ANOMALY_TYPES:
        stats = type_stats(cases, t)
        if stats["positives"] == 0:
            continue
        out[t] = {"positives": stats["positives"]}
        for m in METRICS:
            out[t][m] = bounded(stats[m], n, boot)
    return out


def bounded(stat: IndexStat, n: int, boot: BootstrapSettings, other: IndexStat | None = None
            ) -> Interval:  # fmt: skip
    """The bootstrap interval of ``stat`` (of ``stat - other``, paired, when given), or its
    point estimate alone (NaN bounds) where too few planted users make the statistic undefined
    on many resamples: a small shop may plant two switchers, which no interval can bound."""
    opts: dict[str, Any] = {"n_resamples": boot.resamples, "seed": boot.seed, "level": boot.level}
    try:
        if other is None:
            return interval(stat, n, **opts)
        return paired_difference(stat, other, n, **opts)
    except ValueError:
        every = np.arange(n)
        value = float(stat(every)) - (float(other(every)) if other is not None else 0.0)
        return Interval(value, math.nan, math.nan, boot.level, 0)


def feed_cases(judged: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """``judged`` rows (source, event_date, event_type, observed, expected) with ``y`` and
    ``score``. A truth row names the source it was planted in (``source``; null or absent: any
    source), so another source's events of the same type and day are no positives."""
    sources = truth["source"] if "source" in truth else pd.Series([None] * len(truth))
    planted = {
        (s if isinstance(s, str) else None, str(d), t)
        for s, d, t in zip(sources, truth["date"], truth["event_type"], strict=True)
    }
    out = judged.copy()
    out["y"] = [
        int((src, str(d), t) in planted or (None, str(d), t) in planted)
        for src, d, t in zip(out["source"], out["event_date"], out["event_type"], strict=True)
    ]
    expected = pd.to_numeric(out["expected"], errors="coerce").fillna(0.0).to_numpy()
    observed = out["observed"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        shortfall = np.where(expected > 0, 1.0 - observed / expected, 0.0)
    out["score"] = np.clip(shortfall, 0.0, 1.0)
    return out


def forest_comparison(
    cases: pd.DataFrame, forest: pd.DataFrame, boot: BootstrapSettings
) -> dict[str, dict[str, Interval]]:
    """Per planted type and for ``any`` abuse: PR-AUC of the Isolation Forest score, of the
    rules + peer z-score (the type's score; for ``any`` the largest over the types), and the
    paired difference ``forest - rules`` on the same resampled users."""
    p_forest = (
        cases[["user_id"]]
        .merge(forest, on="user_id", how="left")["forest_score"]
        .fillna(0.0)
        .to_numpy()
    )
    planted = cases["planted"]
    targets = {t: (planted == t).to_numpy() for t in ANOMALY_TYPES}
    targets["any"] = planted.notna().to_numpy()
    out: dict[str, dict[str, Interval]] = {}
    n = len(cases)
    for t, mask in targets.items():
        if not mask.any():
            continue
        y = mask.astype(np.int64)
        if t == "any":
            p_rules = cases[[f"score_{a}" for a in ANOMALY_TYPES]].max(axis=1).to_numpy()
        else:
            p_rules = cases[f"score_{t}"].to_numpy()
        forest_stat = metric_stat(pr_auc, y, p_forest)
        rules_stat = metric_stat(pr_auc, y, p_rules)
        out[t] = {
            "isolation_forest": bounded(forest_stat, n, boot),
            "rules+robust_z": bounded(rules_stat, n, boot),
            "difference": bounded(forest_stat, n, boot, other=rules_stat),
        }
    return out
