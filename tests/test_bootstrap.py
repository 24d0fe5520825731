"""Bootstrap intervals against hand computation and normal theory (no Spark)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shopperlake.training.bootstrap import (
    Interval,
    Resampler,
    interval,
    mean_stat,
    metric_stat,
    paired_difference,
    verdict,
)
from shopperlake.training.metrics import roc_auc


def test_group_resample_draws_whole_groups() -> None:
    groups = np.array(["u1", "u2", "u1", "u3", "u2", "u1"])
    sampler = Resampler(6, groups)
    rng = np.random.default_rng(3)
    for _ in range(20):
        idx = sampler.draw(rng)
        drawn = groups[idx]
        # every drawn group appears with all its rows: u1 3x, u2 2x, u3 1x per draw
        for g, size in (("u1", 3), ("u2", 2), ("u3", 1)):
            assert (drawn == g).sum() % size == 0
        assert sorted(set(idx[groups[idx] == "u1"].tolist())) in ([], [0, 2, 5])


def test_group_bootstrap_of_identical_rows_equals_row_bootstrap_of_one_row_each() -> None:
    rng = np.random.default_rng(0)
    per_user = rng.normal(size=300)
    rows = np.repeat(per_user, 3)  # each user owns 3 identical rows
    groups = np.repeat(np.arange(300), 3)
    grouped = interval(mean_stat(rows), rows.size, groups=groups, seed=11)
    single = interval(mean_stat(per_user), per_user.size, seed=11)
    assert grouped.low == pytest.approx(single.low)
    assert grouped.high == pytest.approx(single.high)
    # Treating the 900 rows as independent understates the noise by about sqrt(3).
    naive = interval(mean_stat(rows), rows.size, seed=11)
    ratio = (single.high - single.low) / (naive.high - naive.low)
    assert 1.4 < ratio < 2.1


def test_mean_interval_matches_normal_theory() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(loc=2.0, scale=3.0, size=4000)
    ci = interval(mean_stat(x), x.size, n_resamples=1000, seed=5)
    half = 1.96 * x.std(ddof=1) / math.sqrt(x.size)
    assert ci.estimate == pytest.approx(x.mean())
    assert ci.low == pytest.approx(x.mean() - half, abs=0.25 * half)
    assert ci.high == pytest.approx(x.mean() + half, abs=0.25 * half)
    assert ci.resamples == 1000


def test_seeded_and_deterministic() -> None:
    x = np.arange(50, dtype=float)
    assert interval(mean_stat(x), 50, seed=9) == interval(mean_stat(x), 50, seed=9)
    assert interval(mean_stat(x), 50, seed=9) != interval(mean_stat(x), 50, seed=10)


def test_paired_difference_of_identical_models_is_exactly_zero() -> None:
    y = np.array([0, 1, 0, 1, 1, 0, 0, 1] * 10)
    p = np.linspace(0.1, 0.9, y.size)
    diff = paired_difference(metric_stat(roc_auc, y, p), metric_stat(roc_auc, y, p), y.size)
    assert (diff.estimate, diff.low, diff.high) == (0.0, 0.0, 0.0)
    assert verdict(diff) == "on par"


def test_paired_difference_detects_a_clearly_better_model() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 2000)
    good = y + rng.normal(scale=0.5, size=y.size)  # AUC ~ 0.92
    weak = y + rng.normal(scale=2.0, size=y.size)  # AUC ~ 0.64
    diff = paired_difference(metric_stat(roc_auc, y, good), metric_stat(roc_auc, y, weak), y.size)
    assert diff.estimate == pytest.approx(roc_auc(y, good) - roc_auc(y, weak))
    assert diff.low > 0.2
    assert verdict(diff) == "beats"
    reverse = paired_difference(
        metric_stat(roc_auc, y, weak), metric_stat(roc_auc, y, good), y.size
    )
    assert verdict(reverse) == "worse"


def test_paired_interval_is_narrower_than_unpaired_for_correlated_models() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=1000)
    a, b = x + 0.05, x  # same users, almost the same values
    paired = paired_difference(mean_stat(a), mean_stat(b), x.size)
    assert paired.low == pytest.approx(0.05) and paired.high == pytest.approx(0.05)
    assert verdict(paired) == "beats"
    single = interval(mean_stat(a), x.size)
    assert single.high - single.low > 2 * 0.05  # each model alone is far noisier than the gap


def test_lower_is_better_verdict() -> None:
    lower = Interval(-0.02, -0.03, -0.01, 0.95, 200)
    assert verdict(lower, higher_is_better=False) == "beats"
    assert verdict(lower, higher_is_better=True) == "worse"
    assert verdict(Interval(0.01, -0.01, 0.03, 0.95, 200)) == "on par"


def test_undefined_on_too_many_resamples_is_an_error() -> None:
    y = np.array([1] + [0] * 29)  # one positive: most resamples lack it
    p = np.linspace(0, 1, 30)
    with pytest.raises(ValueError, match="undefined on"):
        interval(metric_stat(roc_auc, y, p), y.size, seed=1)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="level"):
        interval(mean_stat([1.0, 2.0]), 2, level=1.5)
    with pytest.raises(ValueError, match="groups has shape"):
        Resampler(3, ["a", "b"])
    with pytest.raises(ValueError, match="at least one row"):
        Resampler(0)


def test_compare_pairs_the_model_with_every_other_algorithm() -> None:
    from shopperlake.training.model_metrics import BootstrapSettings, compare, comparison_rows

    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 1500)
    scores = {
        "dnn": y + rng.normal(scale=0.6, size=y.size),
        "twin": None,  # filled below: the DNN's scores plus a constant (same ranking)
        "noise": rng.normal(size=y.size),
    }
    scores["twin"] = scores["dnn"] + 1.0
    stats = {a: {"roc_auc": metric_stat(roc_auc, y, p)} for a, p in scores.items()}
    result = compare(stats, y.size, "dnn", "test", BootstrapSettings(resamples=200, seed=1))
    assert set(result.differences) == {"twin", "noise"}
    assert result.intervals["dnn"]["roc_auc"].estimate == pytest.approx(roc_auc(y, scores["dnn"]))
    assert result.verdicts() == {"twin": {"roc_auc": "on par"}, "noise": {"roc_auc": "beats"}}
    twin = result.differences["twin"]["roc_auc"]
    assert (twin.estimate, twin.low, twin.high) == (0.0, 0.0, 0.0)
    at = __import__("datetime").datetime(2024, 1, 1)
    rows = comparison_rows("churn", "v0001", result, "run-1", at)
    # 3 value rows (reference None) + 2 difference rows (reference = the other algorithm)
    assert sorted((r[2], r[8] or "") for r in rows) == [
        ("dnn", ""),
        ("dnn", "noise"),
        ("dnn", "twin"),
        ("noise", ""),
        ("twin", ""),
    ]
    noise = next(r for r in rows if r[8] == "noise")
    assert noise[5] == pytest.approx(roc_auc(y, scores["dnn"]) - roc_auc(y, scores["noise"]))
    assert noise[6] > 0 and noise[6] <= noise[5] <= noise[7]
