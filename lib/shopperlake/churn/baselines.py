"""Spark MLlib baselines on exactly the DNN's features and splits."""

from __future__ import annotations

from pyspark.ml.classification import GBTClassifier, LogisticRegression
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def _vectors(df: DataFrame) -> DataFrame:
    return df.withColumn("fvec", array_to_vector(F.col("features")))


def fit_predict(
    train: DataFrame,
    evaluate_on: dict[str, DataFrame],
    seed: int,
    gbt_max_iter: int = 60,
    gbt_class_weights: bool = True,
) -> dict[str, dict[str, DataFrame]]:
    """``{algorithm: {split: frame with score}}`` for logistic regression and GBT.

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
    out: dict[str, dict[str, DataFrame]] = {}
    for name, model in (("logreg", lr), ("gbt", gbt_model)):
        out[name] = {}
        for split, df in evaluate_on.items():
            pred = model.transform(_vectors(df))
            out[name][split] = pred.withColumn(
                "score", vector_to_array(F.col("probability"))[1]
            ).drop("fvec", "rawPrediction", "probability", "prediction")
    train_v.unpersist()
    return out
