"""Point-in-time labels. A cutoff date ``c`` means: features see events before the end of day
``c``; the label looks only at the ``H`` days after it, ``[c+1, c+H]``.

- churn: population = users with at least one purchase in the ``L`` days up to and including
  ``c`` (``[c-L+1, c]``); label 1 when they make no purchase in ``[c+1, c+H]``.
- propensity: population = users with any event in ``[c-L+1, c]`` (``population: active``) or
  with a purchase there (``purchasers``); label 1 when they purchase in ``[c+1, c+H]``.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shopperlake.ml.spec import ModelSpec


def label_users(events: DataFrame, cutoff: dt.date, spec: ModelSpec) -> DataFrame:
    """``(user_id, cutoff, label)`` for the model's population at ``cutoff``."""
    first_day = cutoff - dt.timedelta(days=spec.lookback_days - 1)
    last_future = cutoff + dt.timedelta(days=spec.horizon_days)
    day = F.col("event_date")
    purchase = F.col("event_type") == "purchase"
    in_lookback = (day >= F.lit(first_day)) & (day <= F.lit(cutoff))
    in_future = (day > F.lit(cutoff)) & (day <= F.lit(last_future))
    scope = events.where((day >= F.lit(first_day)) & (day <= F.lit(last_future)))
    if spec.kind == "churn" or spec.population == "purchasers":
        member = in_lookback & purchase
    else:
        member = in_lookback
    per_user = scope.groupBy("user_id").agg(
        F.max(member.cast("int")).alias("member"),
        F.max((in_future & purchase).cast("int")).alias("bought"),
    )
    label = (1 - F.col("bought")) if spec.kind == "churn" else F.col("bought")
    return per_user.where(F.col("member") == 1).select(
        "user_id", F.lit(cutoff).alias("cutoff"), label.cast("int").alias("label")
    )
