"""Calibrated probabilities: the calibrators against hand values and Spark MLlib, the choice
between them, and what ``score`` writes for users inside and outside the model's population."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.regression import IsotonicRegression
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from shopperlake.churn.labels import population_members
from shopperlake.churn.score import assemble_scores, population_status, retention_targets
from shopperlake.churn.spec import model_spec
from shopperlake.core.config import load_config
from shopperlake.core.errors import ConfigError
from shopperlake.training.calibration import (
    Calibrator,
    choose,
    fit_isotonic,
    fit_platt,
    fold_ids,
)
from shopperlake.training.metrics import brier, expected_calibration_error

D = dt.date
AS_OF = D(2024, 3, 31)


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def test_isotonic_by_hand() -> None:
    # y=[1,0,1,1] at raw 0.1..0.4: the first two violate order and pool to 0.5; then 1, 1.
    cal = fit_isotonic([1, 0, 1, 1], [0.1, 0.2, 0.3, 0.4])
    assert cal.params == {"x": [0.1, 0.2, 0.3, 0.4], "y": [0.5, 0.5, 1.0, 1.0]}
    # Linear between boundaries, constant beyond them: 0.25 is halfway from 0.5 to 1.
    assert cal.apply([0.05, 0.15, 0.25, 0.9]).tolist() == pytest.approx([0.5, 0.5, 0.75, 1.0])
    # Equal raw scores pool first: raw 0.3 has labels 1 and 0 (mean 0.5), raw 0.2 has 1.
    # 1 > 0.5 violates -> one block of three rows, mean 2/3, spanning 0.2..0.3.
    tied = fit_isotonic([1, 1, 0], [0.2, 0.3, 0.3])
    assert tied.params["x"] == [0.2, 0.3]
    assert tied.params["y"] == pytest.approx([2 / 3, 2 / 3])


def test_isotonic_matches_spark_mllib(spark: SparkSession) -> None:
    rng = np.random.default_rng(3)
    raw = np.round(rng.uniform(0, 1, 300), 2)  # rounded: many ties
    y = (rng.uniform(0, 1, 300) < raw**2).astype(int)
    frame = spark.createDataFrame(
        [(float(a), float(b)) for a, b in zip(raw, y, strict=True)], "raw double, label double"
    )
    model = IsotonicRegression(featuresCol="raw", labelCol="label").fit(frame)
    grid = np.linspace(-0.1, 1.1, 121)
    want = [
        r.prediction
        for r in model.transform(
            spark.createDataFrame([(float(g),) for g in grid], "raw double")
        ).collect()
    ]
    assert fit_isotonic(y, raw).apply(grid).tolist() == pytest.approx(want, abs=1e-9)


def test_platt_matches_spark_logistic_regression_on_smoothed_targets(
    spark: SparkSession,
) -> None:
    rng = np.random.default_rng(5)
    raw = rng.uniform(0.02, 0.98, 400)
    y = (rng.uniform(0, 1, 400) < _sigmoid(0.7 * _logit(raw) - 0.8)).astype(int)
    n_pos, n_neg = int(y.sum()), int(400 - y.sum())
    # Platt's targets as two weighted rows per user: label 1 with weight t, label 0 with 1 - t.
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    rows = [
        (float(z), lab, float(w))
        for z, ti in zip(_logit(raw), t, strict=True)
        for lab, w in ((1.0, ti), (0.0, 1 - ti))
    ]
    frame = VectorAssembler(inputCols=["z"], outputCol="x").transform(
        spark.createDataFrame(rows, "z double, label double, w double")
    )
    lr = LogisticRegression(
        featuresCol="x", weightCol="w", regParam=0.0, standardization=False, tol=1e-12,
        maxIter=200,
    ).fit(frame)  # fmt: skip
    cal = fit_platt(y, raw)
    assert cal.params["a"] == pytest.approx(float(lr.coefficients[0]), abs=1e-5)
    assert cal.params["b"] == pytest.approx(float(lr.intercept), abs=1e-5)


def test_calibrated_mean_matches_observed_rate_on_planted_balanced_scores() -> None:
    # Planted: the true churn probability is q = sigmoid(z) with a 20 % base rate; balanced
    # class weights shift the raw output up in logit space (raw = sigmoid(z + 1.4)), so the
    # raw mean is far above the observed rate.
    rng = np.random.default_rng(11)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        z = rng.normal(-1.9, 1.0, n)
        y = (rng.uniform(0, 1, n) < _sigmoid(z)).astype(int)
        return y, _sigmoid(z + 1.4)

    y_val, raw_val = draw(4000)
    y_test, raw_test = draw(4000)
    choice = choose(y_val, raw_val, ("platt", "isotonic"), folds=5, seed=7)
    cal = choice.calibrator.apply(raw_test)
    observed = y_test.mean()
    assert abs(raw_test.mean() - observed) > 0.15  # uncalibrated: far off
    assert abs(cal.mean() - observed) < 0.015
    assert (
        expected_calibration_error(y_test, cal)
        < 0.03
        < expected_calibration_error(y_test, raw_test)
    )
    assert brier(y_test, cal) < brier(y_test, raw_test)
    # Out-of-fold validation probabilities are honest too.
    assert abs(choice.out_of_fold.mean() - y_val.mean()) < 0.015
    assert set(choice.cv_log_loss) == {"platt", "isotonic"}


def test_choice_follows_cross_validated_log_loss() -> None:
    rng = np.random.default_rng(2)
    # A step in the true probability at raw 0.5: no sigmoid of the logit fits it, isotonic does.
    raw = rng.uniform(0.01, 0.99, 3000)
    y = (rng.uniform(0, 1, 3000) < np.where(raw < 0.5, 0.1, 0.9)).astype(int)
    step = choose(y, raw, folds=5, seed=1)
    assert step.calibrator.method == "isotonic"
    assert step.cv_log_loss["isotonic"] < step.cv_log_loss["platt"]
    # Logistic in the logit with few rows: Platt's two parameters beat isotonic's steps.
    raw = rng.uniform(0.01, 0.99, 200)
    y = (rng.uniform(0, 1, 200) < _sigmoid(2 * _logit(raw) - 0.5)).astype(int)
    smooth = choose(y, raw, folds=5, seed=1)
    assert smooth.calibrator.method == "platt"
    assert smooth.cv_log_loss["platt"] < smooth.cv_log_loss["isotonic"]
    # One method only: no choice, but still out-of-fold validation probabilities.
    assert choose(y, raw, ("isotonic",), folds=5).calibrator.method == "isotonic"


def test_folds_are_stratified_and_seeded() -> None:
    y = np.array([1] * 10 + [0] * 20)
    folds = fold_ids(y, 5, seed=3)
    for k in range(5):
        assert (y[folds == k] == 1).sum() == 2 and (y[folds == k] == 0).sum() == 4
    assert (fold_ids(y, 5, seed=3) == folds).all()
    assert (fold_ids(y, 5, seed=4) != folds).any()


def test_calibrator_json_round_trip_and_errors() -> None:
    cal = Calibrator("platt", {"a": 0.5, "b": -1.0})
    again = Calibrator.from_json(cal.to_json())
    assert again == cal
    # sigmoid(0.5 * logit(0.5) - 1) = sigmoid(-1) = 0.2689414
    assert again.apply([0.5]).tolist() == pytest.approx([0.2689414213699951])
    with pytest.raises(ValueError, match="not a stored calibrator"):
        Calibrator.from_json('{"method": "isotonic", "x": [0.1]}')
    with pytest.raises(ValueError, match="at least 5 validation users of each class, got 2"):
        choose([1, 1, 0, 0, 0, 0, 0, 0], [0.9, 0.8, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6], folds=5)


def test_calibration_config_is_checked() -> None:
    cfg = load_config("local", ["models.churn.calibration.methods=[platt, beta]"])
    with pytest.raises(ConfigError, match="calibration.methods.*beta"):
        model_spec(cfg, "churn")
    cfg = load_config("local", ["models.churn.risk_bands.high=75"])
    with pytest.raises(ConfigError, match="risk_bands are calibrated probabilities"):
        model_spec(cfg, "churn")


# -- score: population ----------------------------------------------------------------------


def spec_for(kind: str, population: str = "purchasers"):  # type: ignore[no-untyped-def]
    base = model_spec(load_config("local"), kind)
    return dataclasses.replace(base, lookback_days=30, population=population)


EVENTS = [
    # u1: a purchase inside the 30-day lookback [03-02, 03-31]
    ("u1", D(2024, 3, 20), "purchase"),
    # u2: last purchase one day before the lookback, views inside it
    ("u2", D(2024, 3, 1), "purchase"),
    ("u2", D(2024, 3, 25), "view"),
    # u3: a purchase after the as-of date only (never read for D)
    ("u3", D(2024, 4, 1), "purchase"),
    # u4: a purchase on the first lookback day
    ("u4", D(2024, 3, 2), "purchase"),
]


def test_out_of_population_users_get_no_score_and_say_why(spark: SparkSession) -> None:
    events = spark.createDataFrame(EVENTS, "user_id string, event_date date, event_type string")
    profiles = spark.createDataFrame([("u1",), ("u2",), ("u3",), ("u4",)], "user_id string")
    churn = spec_for("churn")
    status = population_status(profiles, population_members(events, AS_OF, churn), churn)
    # The model scored the population only (u1, u4); the calibrated scores are given here.
    scored = spark.createDataFrame(
        [("u1", 0.8, ["recency_days"]), ("u4", 0.3, [])],
        "user_id string, score double, top_reasons array<string>",
    )
    got = assemble_scores(status, scored, {"high": 0.75, "medium": 0.5}, "v0001")
    want = spark.createDataFrame(
        [
            ("u1", 0.8, "high", ["recency_days"], "v0001", "in_population"),
            ("u2", None, None, None, "v0001", "no_purchase_in_lookback"),
            ("u3", None, None, None, "v0001", "no_purchase_in_lookback"),
            ("u4", 0.3, "low", [], "v0001", "in_population"),
        ],
        "user_id string, score double, risk_band string, top_reasons array<string>, "
        "model_version string, population string",
    )
    assertDataFrameEqual(got, want)
    # Propensity over active users: u2's views put it in; u3 has nothing up to D.
    active = spec_for("propensity", "active")
    status = population_status(profiles, population_members(events, AS_OF, active), active)
    want_status = spark.createDataFrame(
        [
            ("u1", "in_population"),
            ("u2", "in_population"),
            ("u3", "inactive_in_lookback"),
            ("u4", "in_population"),
        ],
        "user_id string, population string",
    )
    assertDataFrameEqual(status, want_status)


def test_retention_rules_for_users_outside_the_population(spark: SparkSession) -> None:
    scores = spark.createDataFrame(
        [
            ("u1", 0.9, "high", ["recency_days"], "v1", "in_population"),
            ("u2", None, None, None, "v1", "no_purchase_in_lookback"),
            ("u4", 0.6, "medium", [], "v1", "in_population"),
        ],
        "user_id string, score double, risk_band string, top_reasons array<string>, "
        "model_version string, population string",
    )
    profiles = spark.createDataFrame(
        [("u1", 100.0, 0.1), ("u2", 800.0, None), ("u4", 20.0, 0.0)],
        "user_id string, monetary_total double, line_return_rate double",
    )
    cfg = {
        "bands": ["high"],
        "value_column": "monetary_total",
        "return_rate_column": "line_return_rate",
        "rules": [
            {"tier": "coupon", "when": "customer_value >= 50 AND return_rate < 0.3"},
            {"tier": "email", "when": "true"},
        ],
        "outside_population": "exclude",
    }
    schema = (
        "user_id string, score double, risk_band string, rfm_segment string, "
        "customer_value double, value_at_stake double, action string, "
        "top_reasons array<string>, model_version string, population string"
    )
    u1 = ("u1", 0.9, "high", None, 100.0, 90.0, "coupon", ["recency_days"], "v1", "in_population")
    got = retention_targets(scores, profiles, None, cfg)
    assertDataFrameEqual(got, spark.createDataFrame([u1], schema))
    # A tier name instead: u2 gets it, without score, band or value at stake (the rules,
    # which would give it care by value, are not applied to an unscored user).
    got = retention_targets(scores, profiles, None, {**cfg, "outside_population": "win_back"})
    u2 = ("u2", None, None, None, 800.0, None, "win_back", None, "v1", "no_purchase_in_lookback")
    assertDataFrameEqual(got, spark.createDataFrame([u1, u2], schema))
    with pytest.raises(ConfigError, match="outside_population must be 'exclude' or a tier"):
        retention_targets(scores, profiles, None, {**cfg, "outside_population": ""})


def test_retention_rules_see_the_return_rate(spark: SparkSession) -> None:
    """A valuable high-risk user who returns 40 % of the lines bought falls through the coupon
    rule (return_rate < 0.3) to email; one who returns 10 % gets the coupon."""
    scores = spark.createDataFrame(
        [
            ("a", 0.8, "high", [], "v1", "in_population"),
            ("b", 0.8, "high", [], "v1", "in_population"),
        ],
        "user_id string, score double, risk_band string, top_reasons array<string>, "
        "model_version string, population string",
    )
    profiles = spark.createDataFrame(
        [("a", 200.0, 0.4), ("b", 200.0, 0.1)],
        "user_id string, monetary_total double, line_return_rate double",
    )
    cfg = {
        "bands": ["high"],
        "rules": [
            {"tier": "coupon", "when": "customer_value >= 50 AND return_rate < 0.3"},
            {"tier": "email", "when": "true"},
        ],
    }
    got = {r.user_id: r.action for r in retention_targets(scores, profiles, None, cfg).collect()}
    assert got == {"a": "email", "b": "coupon"}
    with pytest.raises(ConfigError, match="return_rate_column 'nope' is not a profile column"):
        retention_targets(scores, profiles, None, {**cfg, "return_rate_column": "nope"})
