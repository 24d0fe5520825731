"""Point-in-time labels. A cutoff date ``c`` means: features see events before the end of day
``c``; the label looks only at the ``H`` days after it, ``[c+1, c+H]``.

- churn: population = users with at least one purchase in the ``L`` days up to and including
  ``c`` (``[c-L+1, c]``); label 1 when they make no purchase in ``[c+1, c+H]``.
- propensity: population = users with any event in ``[c-L+1, c]`` (``population: active``) or
  with a purchase there (``purchasers``); label 1 when they purchase in ``[c+1, c+H]``.

``score`` applies the same population rule (:func:`population_members`) at the as-of date, so
the users it scores are the users the model was trained and calibrated on.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from shopperlake.churn.spec import ModelSpec


def _in_lookback(cutoff: dt.date, spec: ModelSpec) -> Column:
    first_day = cutoff - dt.timedelta(days=spec.lookback_days - 1)
    day = F.col("event_date")
    return (day >= F.lit(first_day)) & (day <= F.lit(cutoff))


def _member(cutoff: dt.date, spec: ModelSpec) -> Column:
    """The population rule on one event row: an event (``active``) or a purchase in the
    lookback."""
    if spec.kind == "churn" or spec.population == "purchasers":
        return _in_lookback(cutoff, spec) & (F.col("event_type") == "purchase")
    return _in_lookback(cutoff, spec)


def population_members(events: DataFrame, cutoff: dt.date, spec: ModelSpec) -> DataFrame:
    """``user_id`` of every user in the model's population at ``cutoff``."""
    first_day = cutoff - dt.timedelta(days=spec.lookback_days - 1)
    day = F.col("event_date")
    scope = events.where((day >= F.lit(first_day)) & (day <= F.lit(cutoff)))
    return scope.where(_member(cutoff, spec)).select("user_id").distinct()


def label_users(events: DataFrame, cutoff: dt.date, spec: ModelSpec) -> DataFrame:
    """``(user_id, cutoff, label)`` for the model's population at ``cutoff``."""
    first_day = cutoff - dt.timedelta(days=spec.lookback_days - 1)
    last_future = cutoff + dt.timedelta(days=spec.horizon_days)
    day = F.col("event_date")
    purchase = F.col("event_type") == "purchase"
    in_future = (day > F.lit(cutoff)) & (day <= F.lit(last_future))
    scope = events.where((day >= F.lit(first_day)) & (day <= F.lit(last_future)))
    per_user = scope.groupBy("user_id").agg(
        F.max(_member(cutoff, spec).cast("int")).alias("member"),
        F.max((in_future & purchase).cast("int")).alias("bought"),
    )
    label = (1 - F.col("bought")) if spec.kind == "churn" else F.col("bought")
    return per_user.where(F.col("member") == 1).select(
        "user_id", F.lit(cutoff).alias("cutoff"), label.cast("int").alias("label")
    )
