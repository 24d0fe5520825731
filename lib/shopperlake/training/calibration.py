"""Probability calibration of a classifier's raw scores, fitted on the validation split.

The models train with balanced class weights, so their raw outputs over-state the rarer class;
a calibrator maps them to probabilities that match observed rates. Candidates:

- ``platt``: logistic regression on the logit of the raw score (raw scores clipped to
  ``[1e-7, 1 - 1e-7]``), fitted by Newton's method on Platt's smoothed targets
  ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)``, which keep the fit finite on separable data.
- ``isotonic``: the non-decreasing step function of least squares (pool-adjacent-violators,
  equal raw scores pooled first), applied like Spark MLlib's ``IsotonicRegression``: linear
  interpolation between block boundaries, constant beyond the outermost ones.

:func:`choose` picks the method by k-fold cross-validated log loss inside the validation split
(every fold is scored by a calibrator fitted on the other folds, so no row judges a fit it
took part in), then refits it on the whole split. Isotonic end blocks can say exactly 0 or 1;
log loss punishes that certainty hard when it is wrong, so on small validation splits Platt
usually wins (on the e2e test data: cross-validated log loss 0.63 vs 0.77). The result is
stored as JSON with the model version (``calibration.json``) and applied by ``train`` and
``score`` through :meth:`Calibrator.apply`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shopperlake.training.metrics import FloatArray, log_loss

METHODS = ("platt", "isotonic")
_EPS = 1e-7  # raw scores are clipped to [eps, 1 - eps] before the logit


def _logit(p: FloatArray) -> FloatArray:
    q = np.clip(p, _EPS, 1.0 - _EPS)
    return np.asarray(np.log(q) - np.log1p(-q), dtype=np.float64)


def _sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)  # overflow-free


def _inputs(y: Any, p: Any) -> tuple[FloatArray, FloatArray]:
    labels = np.asarray(y, dtype=np.float64)
    scores = np.asarray(p, dtype=np.float64)
    if labels.ndim != 1 or labels.shape != scores.shape or labels.size == 0:
        raise ValueError(
            f"calibration needs two 1-D arrays of the same non-zero length, got {labels.shape} "
            f"and {scores.shape}"
        )
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("calibration labels must be 0 or 1")
    if not np.isfinite(scores).all():
        raise ValueError("calibration needs finite raw scores")
    return labels, scores


@dataclass(frozen=True)
class Calibrator:
    """A fitted map from raw scores to probabilities: ``platt`` (``a``, ``b``:
    ``sigmoid(a * logit(p) + b)``) or ``isotonic`` (``x``, ``y``: boundaries and values)."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)

    def apply(self, p: Any) -> FloatArray:
        """Calibrated probabilities of raw scores ``p`` (a 1-D array)."""
        raw = np.asarray(p, dtype=np.float64)
        if self.method == "platt":
            return _sigmoid(self.params["a"] * _logit(raw) + self.params["b"])
        if self.method == "isotonic":
            xs = np.asarray(self.params["x"], dtype=np.float64)
            ys = np.asarray(self.params["y"], dtype=np.float64)
            return np.asarray(np.interp(raw, xs, ys), dtype=np.float64)
        raise ValueError(f"unknown calibration method {self.method!r}")

    def to_json(self) -> str:
        return json.dumps({"method": self.method, **self.params}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Calibrator:
        data = json.loads(text)
        method = data.pop("method", None)
        needed = {"platt": {"a", "b"}, "isotonic": {"x", "y"}}.get(str(method))
        if needed is None or needed - set(data):
            raise ValueError(f"not a stored calibrator: method {method!r}, keys {sorted(data)}")
        return cls(str(method), data)


def fit_platt(y: Any, p: Any, max_iter: int = 100) -> Calibrator:
    """Platt scaling: ``a``, ``b`` minimising the log loss of ``sigmoid(a * logit(p) + b)``
    against Platt's smoothed targets (Newton steps with step halving)."""
    labels, scores = _inputs(y, p)
    n_pos = float(labels.sum())
    n_neg = float(labels.size - n_pos)
    target = np.where(labels == 1.0, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    x = np.column_stack([_logit(scores), np.ones(labels.size)])

    def loss(w: FloatArray) -> float:
        z = x @ w
        # log(1 + e^z) - t z, written to stay finite for large |z|
        return float(np.sum(np.logaddexp(0.0, z) - target * z))

    w = np.array([0.0, math.log((n_pos + 1.0) / (n_neg + 1.0))])
    current = loss(w)
    for _ in range(max_iter):
        q = _sigmoid(x @ w)
        grad = x.T @ (q - target)
        hess = (x * (q * (1.0 - q))[:, None]).T @ x + 1e-12 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        size = 1.0
        while size > 1e-10:
            candidate = w - size * step
            value = loss(candidate)
            if value <= current + 1e-4 * size * float(grad @ -step) or value < current:
                break
            size /= 2.0
        else:
            break  # no decrease along the Newton direction: at the optimum up to rounding
        w, previous, current = candidate, current, value
        if abs(previous - current) <= 1e-12 * max(1.0, abs(current)):
            break
    return Calibrator("platt", {"a": float(w[0]), "b": float(w[1])})


def fit_isotonic(y: Any, p: Any) -> Calibrator:
    """Isotonic regression of the labels on the raw scores (pool adjacent violators)."""
    labels, scores = _inputs(y, p)
    xs, inverse = np.unique(scores, return_inverse=True)
    weights = np.bincount(inverse).astype(np.float64)
    means = np.bincount(inverse, weights=labels) / weights
    # Blocks as [value, weight, first x index, last x index]; merge while a block's value is
    # above the next one's.
    blocks: list[list[float]] = []
    for i, (v, w) in enumerate(zip(means, weights, strict=True)):
        blocks.append([float(v), float(w), i, i])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, _, last = blocks.pop()
            v1, w1, first, _ = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, first, last])
    bx: list[float] = []
    by: list[float] = []
    for value, _, first, last in blocks:
        bx.append(float(xs[int(first)]))
        by.append(value)
        if last != first:
            bx.append(float(xs[int(last)]))
            by.append(value)
    return Calibrator("isotonic", {"x": bx, "y": by})


def fit(method: str, y: Any, p: Any) -> Calibrator:
    if method == "platt":
        return fit_platt(y, p)
    if method == "isotonic":
        return fit_isotonic(y, p)
    raise ValueError(f"unknown calibration method {method!r}; expected one of {METHODS}")


def fold_ids(y: Any, folds: int, seed: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Fold of every row: each class shuffled with ``seed`` and dealt round-robin, so every
    fold gets its share of both classes."""
    labels = np.asarray(y)
    out = np.empty(labels.size, dtype=np.int64)
    rng = np.random.default_rng(seed)
    for cls in (0, 1):
        idx = np.flatnonzero(labels == cls)
        out[rng.permutation(idx)] = np.arange(idx.size) % folds
    return out


@dataclass(frozen=True)
class Choice:
    """The chosen calibrator (refitted on all validation rows), every candidate's
    cross-validated log loss and the chosen method's out-of-fold validation probabilities."""

    calibrator: Calibrator
    cv_log_loss: dict[str, float]
    out_of_fold: FloatArray


def choose(
    y: Any, p: Any, methods: Sequence[str] = METHODS, folds: int = 5, seed: int = 7
) -> Choice:
    """The method of ``methods`` with the lowest k-fold log loss on (``y``, ``p``), refitted on
    all of them. Ties go to the earlier method in ``methods``."""
    labels, scores = _inputs(y, p)
    if not methods:
        raise ValueError("calibration needs at least one method")
    minority = int(min(labels.sum(), labels.size - labels.sum()))
    if folds < 2 or minority < folds:
        raise ValueError(
            f"calibration by {folds}-fold cross-validation needs at least {max(folds, 2)} "
            f"validation users of each class, got {minority} of the rarer one"
        )
    fold = fold_ids(labels.astype(np.int64), folds, seed)
    oof: dict[str, FloatArray] = {}
    for method in methods:
        pred = np.empty(labels.size, dtype=np.float64)
        for k in range(folds):
            held = fold == k
            pred[held] = fit(method, labels[~held], scores[~held]).apply(scores[held])
        oof[method] = pred
    losses = {m: log_loss(labels, oof[m]) for m in methods}
    best = min(methods, key=lambda m: losses[m])
    return Choice(fit(best, labels, scores), losses, oof[best])
