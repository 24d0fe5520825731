"""Every ``models.<name>`` knob of conf/base.yaml has an effect: one focused test per knob on
tiny hand-built rows (no Horovod; the ``dnn`` block is exercised by tests/test_churn_e2e.py).

Knobs covered elsewhere: ``kind``, ``lookback_days``, ``horizon_days``, ``population``
(tests/test_ml_labels.py, labels by hand), ``auto_cutoffs``, ``cutoff_step_days``
(test_cutoffs_must_have_complete_horizons), ``validation_share``
(test_split_is_out_of_time_test_and_stable_user_hash), ``threshold`` (tests/test_evaluation.py,
choose_threshold max_f1 / budget), ``promotion`` (the shared gate,
tests/test_rec_units.py::test_promotion_gate_keeps_current_when_the_new_version_is_worse).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from shopperlake.churn import baselines
from shopperlake.churn.features import FeatureTransform, profile_features
from shopperlake.churn.score import risk_band
from shopperlake.churn.spec import ModelSpec, model_spec
from shopperlake.core.config import load_config
from shopperlake.core.errors import ConfigError, SchemaError
from shopperlake.training.importance import permutation_importance

ROWS = "user_id STRING, cutoff DATE, features ARRAY<FLOAT>, label INT, weight DOUBLE"
C = dt.date(2024, 1, 31)


def _separable(spark: SparkSession, n: int = 10) -> DataFrame:
    """``n`` positives at x = 1 and ``n`` negatives at x = 0: every tree leaf is pure."""
    rows = [(f"p{i}", C, [1.0], 1, 1.0) for i in range(n)]
    rows += [(f"n{i}", C, [0.0], 0, 1.0) for i in range(n)]
    return spark.createDataFrame(rows, ROWS)


def _sigmoid2(margin: float) -> float:
    """Spark's GBT probability of the positive class: ``1 / (1 + exp(-2 margin))``."""
    return 1.0 / (1.0 + math.exp(-2.0 * margin))


@pytest.mark.parametrize("rounds", [1, 2])
def test_gbt_max_iter_sets_the_number_of_boosting_rounds(spark: SparkSession, rounds: int) -> None:
    # Labels become y = +-1. Round 1 fits y itself (tree weight 1): pure leaves predict +-1.
    # Round 2 fits the log-loss pseudo-residual 4y / (1 + exp(2y F)) = +-4 / (1 + e^2) with
    # weight stepSize 0.1. Margins: +-1 after one round, +-(1 + 0.4 / (1 + e^2)) after two.
    train = _separable(spark)
    margin = 1.0 if rounds == 1 else 1.0 + 0.1 * 4.0 / (1.0 + math.exp(2.0))
    got = baselines.fit_predict(train, {"test": train}, seed=3, gbt_max_iter=rounds)["gbt"]["test"]
    want = spark.createDataFrame(
        [(r.user_id, r.label, _sigmoid2(margin if r.label else -margin)) for r in train.collect()],
        "user_id STRING, label INT, score DOUBLE",
    )
    assertDataFrameEqual(got.select("user_id", "label", "score"), want, rtol=1e-9)


def test_gbt_class_weights_weigh_the_leaves(spark: SparkSession) -> None:
    # x = 1: 2 positives and 2 negatives; x = 0: 4 negatives. Balanced class weights: positives
    # 0.5 / (2/8) = 2, negatives 0.5 / (6/8) = 2/3. One round fits y = +-1 by the (weighted)
    # mean of each leaf over the rows the 0.8 subsample keeps (the same rows for both fits:
    # same seed). With k positives and j negatives kept at x = 1 the margin is (k - j) / (k + j)
    # unweighted and (2k - 2j/3) / (2k + 2j/3) weighted; at x = 0 it is -1 either way.
    # Probability 1 / (1 + exp(-2 margin)).
    rows = [(f"p{i}", C, [1.0], 1, 2.0) for i in range(2)]
    rows += [(f"n{i}", C, [1.0], 0, 2.0 / 3.0) for i in range(2)]
    rows += [(f"z{i}", C, [0.0], 0, 2.0 / 3.0) for i in range(4)]
    train = spark.createDataFrame(rows, ROWS)
    got = {}
    for weighted in (True, False):
        scored = baselines.fit_predict(
            train, {"test": train}, seed=3, gbt_max_iter=1, gbt_class_weights=weighted
        )["gbt"]["test"]
        got[weighted] = {r.user_id: r.score for r in scored.collect()}
    for scores in got.values():
        assert [scores[f"z{i}"] for i in range(4)] == pytest.approx([_sigmoid2(-1.0)] * 4)
    kept = [
        (k, j)
        for k in (1, 2)
        for j in (1, 2)
        if got[False]["p0"] == pytest.approx(_sigmoid2((k - j) / (k + j)))
    ]
    assert kept, got[False]
    assert any(
        got[True]["p0"] == pytest.approx(_sigmoid2((2 * k - 2 * j / 3) / (2 * k + 2 * j / 3)))
        for k, j in kept
    ), (got, kept)
    assert got[True]["p0"] > got[False]["p0"]


def test_importance_rows_bounds_the_rows_scored(spark: SparkSession) -> None:
    # 60 test rows, feature 0 is the score, feature 1 is ignored by the scorer.
    rows = [(f"u{i}", C, [float(i % 2) + i / 1000.0, float(i)], i % 2, 1.0) for i in range(60)]
    test = spark.createDataFrame(rows, ROWS)
    seen: dict[int, int] = {}

    def score(df: DataFrame) -> DataFrame:
        for r in df.groupBy("feature").count().collect():
            seen[int(r["feature"])] = int(r["count"])
        return df.withColumn("score", F.col("features")[0].cast("double"))

    got = permutation_importance(test, 2, ["x", "noise"], score, seed=5, max_rows=17)
    # The original rows (feature -1) and each permuted copy: exactly importance_rows rows.
    assert seen == {-1: 17, 0: 17, 1: 17}
    # Permuting a feature the scorer never reads cannot change the AUC.
    assert got["noise"] == 0.0
    assert got["x"] > 0.0
    seen.clear()
    permutation_importance(test, 2, ["x", "noise"], score, seed=5, max_rows=100)
    assert seen == {-1: 60, 0: 60, 1: 60}  # fewer rows than the bound: all of them


CAT_ROWS = "numeric MAP<STRING, DOUBLE>, categorical MAP<STRING, STRING>"


def _train_rows(spark: SparkSession) -> DataFrame:
    # x = e^0 - 1, e^1 - 1, e^2 - 1 (sign-log 0, 1, 2); countries DE twice, FR once.
    xs = [0.0, math.e - 1.0, math.e**2 - 1.0]
    countries = ["DE", "DE", "FR"]
    return spark.createDataFrame(
        [({"x": x}, {"country": c}) for x, c in zip(xs, countries, strict=True)], CAT_ROWS
    )


def test_log_transform_switches_the_sign_log_before_standardising(spark: SparkSession) -> None:
    train = _train_rows(spark)
    logged = FeatureTransform.fit(train, True, (), 20)
    # sign-log values 0, 1, 2: mean 1, population sd sqrt(2/3).
    assert logged.mean["x"] == pytest.approx(1.0)
    assert logged.std["x"] == pytest.approx(math.sqrt(2.0 / 3.0))
    raw = FeatureTransform.fit(train, False, (), 20)
    xs = [0.0, math.e - 1.0, math.e**2 - 1.0]
    mean = sum(xs) / 3
    assert raw.mean["x"] == pytest.approx(mean)
    assert raw.std["x"] == pytest.approx(math.sqrt(sum((x - mean) ** 2 for x in xs) / 3))
    one = spark.createDataFrame([({"x": math.e - 1.0}, {"country": "DE"})], CAT_ROWS)
    assert logged.apply(one).first()["features"] == pytest.approx([0.0])
    z = (math.e - 1.0 - mean) / raw.std["x"]
    assert raw.apply(one).first()["features"] == pytest.approx([z])


def test_vocab_size_limits_the_one_hot_width(spark: SparkSession) -> None:
    train = _train_rows(spark)
    wide = FeatureTransform.fit(train, True, ("country",), 2)
    narrow = FeatureTransform.fit(train, True, ("country",), 1)
    # Most frequent first (DE 2, FR 1), then an "other" slot.
    assert wide.output_names == ["x", "country=DE", "country=FR", "country=__other__"]
    assert narrow.output_names == ["x", "country=DE", "country=__other__"]
    fr = spark.createDataFrame([({"x": math.e - 1.0}, {"country": "FR"})], CAT_ROWS)
    assert wide.apply(fr).first()["features"] == pytest.approx([0.0, 0.0, 1.0, 0.0])
    assert narrow.apply(fr).first()["features"] == pytest.approx([0.0, 0.0, 1.0])  # FR -> other


PROFILES = (
    "user_id STRING, as_of_date DATE, frequency LONG, monetary_total DOUBLE, churner BOOLEAN, "
    "country STRING, age_band STRING, activity MAP<STRING, STRUCT<events: LONG, spend: DOUBLE>>"
)


def _profiles(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(
        [("u1", C, 3, 42.5, True, "DE", "25-34", {"7d": (4, 10.0)})], PROFILES
    )


def _spec(**changes: Any) -> ModelSpec:
    overrides = [f"models.churn.{k}={v}" for k, v in changes.items()]
    return model_spec(load_config("local", overrides), "churn")


def test_exclude_and_categorical_features_choose_the_profile_columns(spark: SparkSession) -> None:
    schema = "user_id STRING, numeric MAP<STRING, DOUBLE>, categorical MAP<STRING, STRING>"
    every = profile_features(_profiles(spark), _spec(categorical_features="[country]"))
    want = spark.createDataFrame(
        [("u1", {"activity_7d_events": 4.0, "activity_7d_spend": 10.0, "churner": 1.0,
                 "frequency": 3.0, "monetary_total": 42.5}, {"country": "DE"})],
        schema,
    )  # fmt: skip
    assertDataFrameEqual(every, want)
    fewer = profile_features(
        _profiles(spark),
        _spec(
            categorical_features="[age_band, country]",
            exclude_features="[monetary_total, activity_7d_spend]",
        ),
    )
    want = spark.createDataFrame(
        [("u1", {"activity_7d_events": 4.0, "churner": 1.0, "frequency": 3.0},
          {"age_band": "25-34", "country": "DE"})],
        schema,
    )  # fmt: skip
    assertDataFrameEqual(fewer, want)
    with pytest.raises(SchemaError, match="categorical feature.*signup_channel"):
        profile_features(_profiles(spark), _spec(categorical_features="[signup_channel]"))


def test_risk_bands_map_scores_to_the_configured_bands(spark: SparkSession) -> None:
    scores = spark.createDataFrame([(s,) for s in (0.1, 0.2, 0.49, 0.5, 0.9)], "score DOUBLE")
    got = [r.band for r in scores.select(risk_band(F.col("score"), {"high": 0.5, "medium": 0.2})
                                         .alias("band")).collect()]  # fmt: skip
    assert got == ["low", "medium", "medium", "high", "high"]
    got = [r.band for r in scores.select(risk_band(F.col("score"), {"high": 0.9})
                                         .alias("band")).collect()]  # fmt: skip
    assert got == ["low", "low", "low", "low", "high"]


# Each leaf key of models.churn / models.propensity in conf/base.yaml, override values (the
# first that differs from the model's configured one is used) and where it lands in the spec
# (what train and score read).
KNOBS: dict[str, tuple[str, str]] = {
    "kind": ("churn|propensity", "kind"),
    "lookback_days": ("11", "lookback_days"),
    "horizon_days": ("12", "horizon_days"),
    "auto_cutoffs": ("7", "auto_cutoffs"),
    "cutoff_step_days": ("9", "cutoff_step_days"),
    "validation_share": ("0.35", "validation_share"),
    "categorical_features": ("[country]", "categorical_features"),
    "exclude_features": ("[tenure_days]", "exclude_features"),
    "log_transform": ("false", "log_transform"),
    "vocab_size": ("3", "vocab_size"),
    "threshold.strategy": ("max_f1|budget", "threshold_strategy"),
    "threshold.budget": ("0.05", "budget"),
    "promotion.metric": ("pr_auc", "promotion_metric"),
    "promotion.min_delta": ("0.01", "promotion_min_delta"),
    "risk_bands.high": ("0.8", "risk_bands"),
    "risk_bands.medium": ("0.3", "risk_bands"),
    "score_table": ("gold.other_scores", "score_table"),
    "gbt_max_iter": ("5", "gbt_max_iter"),
    "importance_rows": ("123", "importance_rows"),
    "dnn.hidden": ("[8]", "dnn"),
    "dnn.dropout": ("0.3", "dnn"),
    "dnn.learning_rate": ("0.01", "dnn"),
    "dnn.batch_size": ("64", "dnn"),
    "dnn.epochs": ("2", "dnn"),
    "dnn.patience": ("1", "dnn"),
    "dnn.num_proc": ("1", "dnn"),
    "dnn.seed": ("8", "dnn"),
    "population": ("purchasers|active", "population"),  # propensity only (churn: purchasers)
    # behaviour covered in tests/test_ml_labels.py (designs) and tests/test_calibration.py
    "design": ("rolling|holdout", "design"),
    "test_share": ("0.3", "test_share"),
    "split_seed": ("8", "split_seed"),
    "calibration.methods": ("[platt]", "calibration"),
    "calibration.folds": ("3", "calibration"),
    "calibration.seed": ("8", "calibration"),
    # the sequence head (behaviour covered in tests/test_sequence_head.py)
    "sequence.enabled": ("true|false", "sequence"),
    "sequence.max_len": ("20", "sequence"),
    "sequence.dim": ("16", "sequence"),
    "sequence.blocks": ("2", "sequence"),
    "sequence.heads": ("1", "sequence"),
    "sequence.dropout": ("0.1", "sequence"),
    "sequence.epochs": ("3", "sequence"),
    "sequence.batch_size": ("64", "sequence"),
    "sequence.learning_rate": ("0.002", "sequence"),
    "sequence.num_proc": ("1", "sequence"),
    "sequence.seed": ("8", "sequence"),
    "sequence.max_items": ("200", "sequence"),
    "sequence.step": ("event|day", "sequence"),
    "sequence.patience": ("5", "sequence"),
    "sequence.precision": ("mixed_float16", "sequence"),
    "sequence.next_item_weight": ("0.5", "sequence"),
}


def _leaves(block: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in block.items():
        if isinstance(value, dict):
            out |= _leaves(value, f"{prefix}{key}.")
        else:
            out.add(f"{prefix}{key}")
    return out


@pytest.mark.parametrize("model", ["churn", "propensity"])
def test_every_models_key_reaches_the_spec(model: str) -> None:
    block = load_config("local").section(f"models.{model}")
    assert _leaves(block) <= set(KNOBS), sorted(_leaves(block) - set(KNOBS))
    base = model_spec(load_config("local"), model)
    for key in sorted(_leaves(block)):
        values, field = KNOBS[key]
        configured = load_config("local").get(f"models.{model}.{key}")
        value = next(v for v in values.split("|") if v != str(configured))
        sets = [f"models.{model}.{key}={value}"]
        if key == "kind" and model == "propensity":  # churn: only purchasers
            sets.append(f"models.{model}.population=purchasers")
        changed = model_spec(load_config("local", sets), model)
        assert getattr(changed, field) != getattr(base, field), key


def test_unknown_or_ineffective_model_keys_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"models.churn: unknown key\(s\) gbt_max_iters"):
        _spec(gbt_max_iters=5)
    with pytest.raises(ConfigError, match=r"models.churn.threshold: unknown key\(s\) strategie"):
        _spec(**{"threshold.strategie": "budget"})
    with pytest.raises(ConfigError, match="population has no effect for kind churn"):
        _spec(population="active")
    with pytest.raises(ConfigError, match="gbt_max_iter must be >= 1"):
        _spec(gbt_max_iter=0)
