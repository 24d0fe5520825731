"""Daily demand series on Spark: units of purchase events per item or category and day.

Categories and departments come from ``bronze.items`` as of a given day (point in time);
items of excluded departments (``forecast.exclude_departments``: fuel, coupons) and, at the
category level, items without a category are left out. Days without sales are absent here
and become 0 in :func:`shopperlake.forecast.local.dense`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from shopperlake.core.lake import Lake
from shopperlake.forecast.spec import LevelRule
from shopperlake.profiles.features import attributes_as_of


def purchases(
    lake: Lake, first: dt.date, last: dt.date, sources: Sequence[str] | None
) -> DataFrame:
    """Purchase lines of days ``[first, last]``: ``item_id, ds, quantity``."""
    events = lake.read("bronze.events").where(
        (F.col("event_type") == "purchase")
        & F.col("event_date").between(F.lit(first), F.lit(last))
        & F.col("item_id").isNotNull()
        & F.col("quantity").isNotNull()
    )
    if sources is not None:
        events = events.where(F.col("source").isin(*sources))
    return events.select("item_id", F.col("event_date").alias("ds"), "quantity")


def first_purchase_day(lake: Lake, last: dt.date, sources: Sequence[str] | None) -> dt.date | None:
    """The first day with a purchase event up to ``last`` (None: none)."""
    events = lake.read("bronze.events").where(
        (F.col("event_type") == "purchase") & (F.col("event_date") <= F.lit(last))
    )
    if sources is not None:
        events = events.where(F.col("source").isin(*sources))
    row = events.agg(F.min("event_date")).first()
    return None if row is None else row[0]


def catalog(lake: Lake, as_of: dt.date) -> DataFrame:
    """``item_id, category, department`` of ``bronze.items`` as of the end of ``as_of``."""
    items = lake.read("bronze.items", required=False)
    return attributes_as_of(items, as_of, "item_id").select("item_id", "category", "department")


def daily_demand(
    lines: DataFrame, items: DataFrame, level: str, exclude_departments: Sequence[str]
) -> DataFrame:
    """``series_id, ds, y``: units per series and day with at least one sale."""
    rows = lines.join(F.broadcast(items), on="item_id", how="left")
    if exclude_departments:
        rows = rows.where(
            F.col("department").isNull() | ~F.col("department").isin(*exclude_departments)
        )
    key = F.col("item_id") if level == "item" else F.col("category")
    rows = rows.where(key.isNotNull())
    return rows.groupBy(key.alias("series_id"), "ds").agg(
        F.sum("quantity").cast("double").alias("y")
    )


def promotions_daily(
    lake: Lake,
    items: DataFrame,
    level: str,
    first: dt.date,
    last: dt.date,
    sources: Sequence[str] | None,
) -> DataFrame | None:
    """``series_id, ds, display, mailer``: per series and day of ``[first, last]``, how many
    of its item x store promotions (``bronze.promotions``) place it on display and in the
    mailer; None without the table. Promotions are plans, known before the days they run."""
    if not lake.exists("bronze.promotions"):
        return None
    rows = lake.read("bronze.promotions").where(
        (F.col("end_date") >= F.lit(first)) & (F.col("start_date") <= F.lit(last))
    )
    if sources is not None:
        rows = rows.where(F.col("source").isin(*sources))
    if level == "category":
        rows = rows.join(F.broadcast(items.select("item_id", "category")), "item_id")
    key = F.col("item_id") if level == "item" else F.col("category")
    days = F.explode(
        F.sequence(F.greatest("start_date", F.lit(first)), F.least("end_date", F.lit(last)))
    )
    return (
        rows.where(key.isNotNull())
        .select(key.alias("series_id"), days.alias("ds"), "display", "mailer")
        .groupBy("series_id", "ds")
        .agg(
            F.count("display").cast("double").alias("display"),
            F.count("mailer").cast("double").alias("mailer"),
        )
    )


def select_series(demand: DataFrame, rule: LevelRule, first: dt.date, last: dt.date) -> DataFrame:
    """``series_id, units``: the series a level forecasts, judged on the units of days
    ``[first, last]`` (categories with >= ``min_units``; the ``top_n`` items, ties by id)."""
    units = (
        demand.where(F.col("ds").between(F.lit(first), F.lit(last)))
        .groupBy("series_id")
        .agg(F.sum("y").alias("units"))
    )
    if rule.top_n is not None:
        rank = F.row_number().over(Window.orderBy(F.desc("units"), F.asc("series_id")))
        return units.withColumn("_rank", rank).where(F.col("_rank") <= rule.top_n).drop("_rank")
    assert rule.min_units is not None
    return units.where(F.col("units") >= F.lit(rule.min_units))
