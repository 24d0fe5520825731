"""Spark MLlib baselines on exactly the DNN's features and splits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyspark.ml.classification import (
    GBTClassificationModel,
    GBTClassifier,
    LogisticRegression,
    LogisticRegressionModel,
)
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shopperlake.core.errors import InputError

# the fitted models' classes, to load a saved one by its algorithm name
LOADERS: dict[str, Any] = {"logreg": LogisticRegressionModel, "gbt": GBTClassificationModel}


def _vectors(df: DataFrame) -> DataFrame:
    return df.withColumn("fvec", array_to_vector(F.col("features")))


def fit(
    train: DataFrame, seed: int, gbt_max_iter: int = 60, gbt_class_weights: bool = True
) -> dict[str, Any]:
    """``{algorithm: fitted MLlib model}`` for logistic regression and GBT.

    ``gbt_max_iter`` (``models.<name>.gbt_max_iter``) is the number of boosting rounds, i.e.
    trees, of the GBT (Spark does not stop GBT early without a validation column).
    ``gbt_class_weights``: fit the GBT with the rows' ``weight`` (balanced classes) or
    unweighted (returns: with 3 % positives a positive weighs as much as 36 negatives, which did
    not help the trees; README, "Quality on real data")."""
    train_v = _vectors(train).withColumn("label", F.col("label").cast("double")).cache()
    lr = LogisticRegression(
        featuresCol="fvec",
        labelCol="label",
        weightCol="weight",
        maxIter=100,
        regParam=0.001,
        elasticNetParam=0.0,
    ).fit(train_v)
    gbt = GBTClassifier(
        featuresCol="fvec",
        labelCol="label",
        maxIter=gbt_max_iter,
        maxDepth=4,
        stepSize=0.1,
        subsamplingRate=0.8,
        seed=seed,
    )
    if gbt_class_weights:
        gbt.setWeightCol("weight")
    gbt_model = gbt.fit(train_v)
    train_v.unpersist()
    return {"logreg": lr, "gbt": gbt_model}


def predict(model: Any, df: DataFrame, column: str = "score") -> DataFrame:
    """``df`` (with ``features``) plus the model's probability of class 1 as ``column``."""
    pred = model.transform(_vectors(df))
    return pred.withColumn(column, vector_to_array(F.col("probability"))[1]).drop(
        "fvec", "rawPrediction", "probability", "prediction"
    )


def fit_predict(
    train: DataFrame,
    evaluate_on: dict[str, DataFrame],
    seed: int,
    gbt_max_iter: int = 60,
    gbt_class_weights: bool = True,
) -> dict[str, dict[str, DataFrame]]:
    """``{algorithm: {split: frame with score}}`` for the models of :func:`fit`."""
    models = fit(train, seed, gbt_max_iter, gbt_class_weights)
    return {
        name: {split: predict(model, df) for split, df in evaluate_on.items()}
        for name, model in models.items()
    }


def save(model: Any, path: Path) -> None:
    model.write().overwrite().save(str(path))


def load(algorithm: str, path: Path) -> Any:
    if algorithm not in LOADERS:
        raise InputError(f"no MLlib model named '{algorithm}' (known: {sorted(LOADERS)})")
    if not path.exists():
        raise InputError(f"no saved {algorithm} model at {path}: run train again")
    return LOADERS[algorithm].load(str(path))
