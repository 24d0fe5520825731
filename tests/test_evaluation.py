"""Binary classifier metrics against values worked out by hand (no reference library)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

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
    precision_recall_f1,
    roc_auc,
)

# The running example: two negatives (0.1, 0.4) and two positives (0.35, 0.8).
Y = np.array([0, 0, 1, 1])
P = np.array([0.1, 0.4, 0.35, 0.8])


def test_roc_auc_counts_correctly_ordered_pairs() -> None:
    # pos 0.35 beats neg 0.1, loses to neg 0.4; pos 0.8 beats both -> 3 of 4 pairs.
    assert roc_auc(Y, P) == pytest.approx(0.75)


def test_roc_auc_ties_count_one_half() -> None:
    # y=[0,1,0,1], p=[0.5,0.5,0.2,0.9]: pos 0.5 ties neg 0.5 (1/2), beats neg 0.2 (1);
    # pos 0.9 beats both (2) -> 3.5 / 4.
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(0.875)
    # Every score tied: each pair counts 1/2.
    assert roc_auc([0, 1, 1, 0, 1], [0.3] * 5) == pytest.approx(0.5)


def test_average_precision_steps() -> None:
    # Thresholds 0.8: P=1, R=1/2 | 0.4: P=1/2, R=1/2 | 0.35: P=2/3, R=1 | 0.1: P=1/2, R=1.
    # AP = 1/2*1 + 0*1/2 + 1/2*2/3 + 0*1/2 = 5/6.
    assert pr_auc(Y, P) == pytest.approx(0.8333333333333334)


def test_average_precision_groups_tied_scores() -> None:
    # y=[1,1,0,0,1], p=[0.9,0.6,0.6,0.2,0.1]; the tied pair at 0.6 enters at once:
    # 0.9: TP1 FP0 P=1 R=1/3 | 0.6: TP2 FP1 P=2/3 R=2/3 | 0.2: P=1/2 R=2/3 | 0.1: P=3/5 R=1
    # AP = 1/3*1 + 1/3*2/3 + 0 + 1/3*3/5 = 34/45 (positive-first order would give 0.8667).
    assert pr_auc([1, 1, 0, 0, 1], [0.9, 0.6, 0.6, 0.2, 0.1]) == pytest.approx(0.7555555555555555)


def test_log_loss_and_brier() -> None:
    # -(ln 0.9 + ln 0.6 + ln 0.35 + ln 0.8) / 4
    # = (0.1053605 + 0.5108256 + 1.0498221 + 0.2231436) / 4 = 0.4722880
    assert log_loss(Y, P) == pytest.approx(0.47228795380917615)
    # (0.1^2 + 0.4^2 + 0.65^2 + 0.2^2) / 4 = (0.01 + 0.16 + 0.4225 + 0.04) / 4
    assert brier(Y, P) == pytest.approx(0.158125)


def test_log_loss_clips_certain_mistakes() -> None:
    # p=0 for a positive would be infinite; clipped to eps=1e-15 the positive costs
    # -ln(1e-15) = 34.5387764 and the negative -ln(1 - 1e-15) ~ 1e-15 -> mean 17.2693882.
    assert log_loss([1, 0], [0.0, 0.0]) == pytest.approx(17.269388197455342)


def test_precision_recall_f1_at_threshold() -> None:
    # p >= 0.35 flags 0.4 (neg), 0.35 (pos), 0.8 (pos): P=2/3, R=2/2, F1=2*(2/3)/(5/3)=0.8.
    assert precision_recall_f1(Y, P, 0.35) == pytest.approx((2 / 3, 1.0, 0.8))
    # Nobody flagged: precision and F1 are 0 by convention.
    assert precision_recall_f1(Y, P, 0.9) == (0.0, 0.0, 0.0)


def test_choose_threshold_max_f1() -> None:
    # F1 per candidate: 0.8 -> 2/3, 0.4 -> 1/2, 0.35 -> 0.8, 0.1 -> 2/3.
    assert choose_threshold(Y, P) == 0.35
    # y=[1,0], p=[0.9,0.1]: F1 at 0.9 is 1, at 0.1 is 2/3 -> 0.9.
    assert choose_threshold([1, 0], [0.9, 0.1], "max_f1") == 0.9


def test_choose_threshold_budget() -> None:
    # Scores descending: 0.8, 0.4, 0.35, 0.1.
    # budget 0.5 of 4 users = 2 -> 2nd highest score.
    assert choose_threshold(Y, P, "budget", budget=0.5) == 0.4
    # 0.3 * 4 = 1.2 -> at most 1 contact -> highest score; tiny budgets still contact one.
    assert choose_threshold(Y, P, "budget", budget=0.3) == 0.8
    assert choose_threshold(Y, P, "budget", budget=0.01) == 0.8
    assert choose_threshold(Y, P, "budget", budget=1.0) == 0.1
    # 0.3 * 10 is 3.0000000000000004 in floating point: still 3 users -> 3rd score 0.8.
    scores = np.arange(10, 0, -1) / 10  # 1.0, 0.9, ..., 0.1
    assert choose_threshold([1, 0] * 5, scores, "budget", budget=0.3) == 0.8


def test_lift_table_two_bins_of_ten() -> None:
    # 20 users with distinct scores; the top 10 hold 6 positives, the bottom 10 hold 2.
    # Base rate 8/20 = 0.4.
    # decile 1: rate 6/10=0.6, lift 0.6/0.4=1.5, gains 6/8=0.75, cum lift 0.6/0.4=1.5
    # decile 2: rate 2/10=0.2, lift 0.5, gains 8/8=1.0, cum lift (8/20)/0.4=1.0
    scores = np.arange(20, 0, -1) / 20  # 1.00, 0.95, ..., 0.05
    top, bottom = [1, 1, 0, 1, 0, 1, 1, 0, 0, 1], [0, 1, 0, 0, 0, 0, 1, 0, 0, 0]
    labels = np.array([*top, *bottom])
    shuffle = np.random.default_rng(7).permutation(20)
    got = lift_table(labels[shuffle], scores[shuffle], bins=2)
    expected = pd.DataFrame(
        {
            "decile": [1, 2],
            "n": [10, 10],
            "positives": [6, 2],
            "rate": [0.6, 0.2],
            "lift": [1.5, 0.5],
            "cum_gains": [0.75, 1.0],
            "cum_lift": [1.5, 1.0],
        }
    )
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_lift_table_ties_at_boundary_follow_input_order() -> None:
    # Scores 0.5 (idx0,y0), 0.9 (idx1,y0), 0.5 (idx2,y1), 0.5 (idx3,y1); sorted: idx1, then the
    # tied idx0, idx2, idx3 in input order -> bin 1 = {idx1, idx0} has 0 positives, bin 2 has 2.
    got = lift_table([0, 0, 1, 1], [0.5, 0.9, 0.5, 0.5], bins=2)
    assert got["positives"].tolist() == [0, 2]
    # 5 users into 2 bins: the first bin takes the extra user.
    assert lift_table([1, 0, 0, 1, 0], [0.9, 0.8, 0.7, 0.6, 0.5], bins=2)["n"].tolist() == [3, 2]


def test_calibration_table_equal_width_bins() -> None:
    # bins of width 0.25: [0,.25) gets 0.05, 0.15, 0.12 (y 0,0,1); [.25,.5) is empty;
    # [.5,.75) gets 0.5 (y 0); [.75,1] gets 0.95 and 1.0 (y 1,1).
    got = calibration_table([0, 0, 1, 1, 1, 0], [0.05, 0.15, 0.12, 0.95, 1.0, 0.5], bins=4)
    expected = pd.DataFrame(
        {
            "bin": [1, 2, 3, 4],
            "lower": [0.0, 0.25, 0.5, 0.75],
            "upper": [0.25, 0.5, 0.75, 1.0],
            "n": [3, 0, 1, 2],
            "mean_predicted": [0.32 / 3, np.nan, 0.5, 0.975],  # 0.32/3 = 0.10667
            "observed_rate": [1 / 3, np.nan, 0.0, 1.0],
        }
    )
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_expected_calibration_error_by_hand() -> None:
    # The calibration-table example above, 4 bins: |0.10667 - 1/3| = 0.22667 over 3 users,
    # |0.5 - 0| = 0.5 over 1, |0.975 - 1| = 0.025 over 2; the empty bin counts nothing.
    # ECE = (3 * 0.22667 + 0.5 + 2 * 0.025) / 6 = (0.68 + 0.5 + 0.05) / 6 = 0.205.
    got = expected_calibration_error([0, 0, 1, 1, 1, 0], [0.05, 0.15, 0.12, 0.95, 1.0, 0.5], 4)
    assert got == pytest.approx(0.205)
    # Default 10 bins, running example: every score alone in its bin ->
    # (|0.1 - 0| + |0.4 - 0| + |0.35 - 1| + |0.8 - 1|) / 4 = 1.35 / 4.
    assert expected_calibration_error(Y, P) == pytest.approx(0.3375)
    # Probabilities equal to each bin's observed rate: perfectly calibrated.
    assert expected_calibration_error(
        [0, 1, 0, 0, 0, 1], [0.5, 0.5, 0.25, 0.25, 0.25, 0.25], 4
    ) == (pytest.approx(0.0))


def test_evaluate_collects_every_metric() -> None:
    got = evaluate(Y, P, threshold=0.35)
    assert got == pytest.approx(
        {
            "roc_auc": 0.75,
            "pr_auc": 0.8333333333333334,
            "log_loss": 0.47228795380917615,
            "brier": 0.158125,
            "ece": 0.3375,
            "precision": 2 / 3,
            "recall": 1.0,
            "f1": 0.8,
            "threshold": 0.35,
            "positive_rate": 0.75,  # 3 of 4 flagged
            "base_rate": 0.5,
            "n": 4.0,
        }
    )


def test_constant_baseline_predicts_training_base_rate() -> None:
    # Training base rate 1/4; eval y=[0,0,1,1] all scored 0.25 and all flagged.
    # AUC 0.5 (all tied); AP: one threshold, P=2/4, R=1 -> 0.5;
    # log loss -(2 ln 0.75 + 2 ln 0.25)/4 = (0.2876821 + 1.3862944)/2 = 0.8369882;
    # Brier (2*0.25^2 + 2*0.75^2)/4 = 0.3125; precision 0.5, recall 1, F1 2*0.5/1.5 = 2/3.
    got = constant_baseline(np.array([0, 0, 0, 1]), Y)
    assert got == pytest.approx(
        {
            "roc_auc": 0.5,
            "pr_auc": 0.5,
            "log_loss": 0.8369882167858358,
            "brier": 0.3125,
            "ece": 0.25,  # one bin: |0.25 - 0.5|
            "precision": 0.5,
            "recall": 1.0,
            "f1": 2 / 3,
            "threshold": 0.25,
            "positive_rate": 1.0,
            "base_rate": 0.5,
            "n": 4.0,
        }
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: roc_auc([1, 1, 1], [0.2, 0.5, 0.9]), "roc_auc needs both classes"),
        (lambda: roc_auc([0, 1, 2], [0.2, 0.5, 0.9]), r"y must contain only 0 and 1, found \[2\]"),
        (lambda: roc_auc([0, 1], [0.2, 0.5, 0.9]), "differ in length: 2 labels, 3 scores"),
        (lambda: roc_auc([0, 1], [0.2, np.nan]), "1 NaN or infinite score"),
        (lambda: roc_auc([[0, 1]], [[0.2, 0.3]]), r"y must be 1-D, got shape \(1, 2\)"),
        (lambda: roc_auc([], []), "y is empty"),
        (lambda: pr_auc([0, 0], [0.2, 0.3]), "pr_auc needs at least one positive"),
        (lambda: log_loss([0, 1], [0.2, 1.3]), r"probabilities in \[0, 1\]"),
        (lambda: brier([0, 1], [-0.1, 0.5]), r"probabilities in \[0, 1\]"),
        (lambda: choose_threshold(Y, P, "top"), "unknown threshold strategy 'top'"),  # type: ignore[arg-type]
        (lambda: choose_threshold(Y, P, "budget", budget=0), r"budget must be a share in \(0, 1\]"),
        (lambda: lift_table(Y, P, bins=5), "at least 5 rows for 5 bins, got 4"),
        (lambda: lift_table([0, 0, 0], [0.1, 0.2, 0.3], bins=2), "at least one positive"),
        (lambda: calibration_table(Y, P, bins=0), "bins must be >= 1"),
        (lambda: expected_calibration_error(Y, P, bins=0), "bins must be >= 1"),
        (lambda: plot_curves(Y, {}, Path("unused")), "at least one model"),
    ],
)
def test_invalid_input_names_the_problem(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_plot_curves_writes_four_pngs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 20)
    scores = {
        "dnn": np.clip(0.6 * y + rng.uniform(0, 0.4, 40), 0, 1),
        "logreg": rng.uniform(0, 1, 40),
    }
    paths = plot_curves(y, scores, tmp_path / "plots")
    assert [p.name for p in paths] == ["roc.png", "pr.png", "lift.png", "calibration.png"]
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(data) > 1000
    # Drawn on Agg canvases directly: no figure left open in pyplot's global registry.
    pyplot = sys.modules.get("matplotlib.pyplot")
    assert pyplot is None or pyplot.get_fignums() == []
