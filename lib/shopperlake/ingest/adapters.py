"""Small code some source mappings need beyond column expressions (``transform:`` key).

Each transform takes the raw frame (string fields + ``_raw``/``_source_file``/``_malformed``)
and the mapping's ``params`` and returns the same rows (never drops or adds one) with extra
raw fields the mapping's expressions can use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from shopperlake.core.errors import ConfigError

Transform = Callable[[DataFrame, Mapping[str, Any]], DataFrame]


def instacart_timeline(df: DataFrame, params: Mapping[str, Any]) -> DataFrame:
    """Absolute order times for Instacart, which only has relative days.

    Per user, orders are placed on a day axis by the cumulative ``days_since_prior_order``
    (ordered by ``order_number``). The user's first order falls in the four weeks after
    ``anchor_date`` — offset by a hash of the user id — on the first day whose weekday
    equals the first order's ``order_dow`` (0 = Sunday). The time of day is
    ``order_hour_of_day``, plus ``add_to_cart_order`` seconds so the lines of one basket keep
    their cart order. Adds the raw field ``event_ts`` (``yyyy-MM-dd HH:mm:ss``).
    """
    anchor = str(params.get("anchor_date", "2017-01-01"))
    number = F.col("order_number").cast("int")
    orders = (
        df.where(~F.col("_malformed") & F.col("user_id").isNotNull() & number.isNotNull())
        .select(
            "user_id",
            number.alias("_order_no"),
            F.col("order_dow").cast("int").alias("_dow"),
            F.coalesce(F.col("days_since_prior_order").cast("double"), F.lit(0.0)).alias("_gap"),
        )
        .groupBy("user_id", "_order_no")
        .agg(F.first("_dow", ignorenulls=True).alias("_dow"), F.max("_gap").alias("_gap"))
    )
    by_user = Window.partitionBy("user_id").orderBy("_order_no")
    first_dow = F.first("_dow").over(
        by_user.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    )
    start = F.date_add(
        F.to_date(F.lit(anchor)), F.pmod(F.xxhash64("user_id"), F.lit(28)).cast("int")
    )
    # Spark's dayofweek is 1 = Sunday; Instacart's order_dow is taken as 0 = Sunday.
    shift = F.pmod(first_dow + F.lit(1) - F.dayofweek(start), F.lit(7)).cast("int")
    orders = orders.select(
        "user_id",
        "_order_no",
        F.date_add(
            F.date_add(start, shift),
            (F.sum("_gap").over(by_user) - F.first("_gap").over(by_user)).cast("int"),
        ).alias("_day"),
    )
    hour = F.coalesce(F.col("order_hour_of_day").cast("int"), F.lit(0))
    seconds = F.coalesce(F.col("add_to_cart_order").cast("double").cast("int"), F.lit(0))
    joined = df.withColumn("_order_no", number).join(orders, ["user_id", "_order_no"], "left")
    ts = F.timestamp_seconds(
        F.unix_timestamp(F.col("_day").cast("timestamp")) + hour * 3600 + seconds
    )
    return joined.withColumn("event_ts", F.date_format(ts, "yyyy-MM-dd HH:mm:ss")).drop(
        "_order_no", "_day"
    )


def earlier_purchase(df: DataFrame, params: Mapping[str, Any]) -> DataFrame:
    """Whether each return line has an earlier purchase of the same item by the same user in
    the same input (Online Retail's cancellation invoices often undo orders placed before the
    data starts). Adds the raw field ``has_earlier_purchase``: ``true``/``false`` on rows where
    ``params.is_return`` holds, null elsewhere. ``params``: ``user``, ``item``, ``time`` (a
    timestamp expression), ``is_return``, ``is_purchase`` -- Spark SQL over the raw fields."""
    missing = [k for k in ("user", "item", "time", "is_return", "is_purchase") if k not in params]
    if missing:
        raise ConfigError(f"transform earlier_purchase needs params {', '.join(missing)}")
    user, item, when = (F.expr(str(params[k])) for k in ("user", "item", "time"))
    is_return, is_purchase = F.expr(str(params["is_return"])), F.expr(str(params["is_purchase"]))
    keyed = df.withColumns({"__u": user, "__i": item, "__t": when})
    first = (
        keyed.where(is_purchase & F.col("__u").isNotNull() & F.col("__t").isNotNull())
        .groupBy("__u", "__i")
        .agg(F.min("__t").alias("__first"))
    )
    flag = F.when(
        F.coalesce(is_return, F.lit(False)),
        F.when(F.col("__first") < F.col("__t"), "true").otherwise("false"),
    )
    return (
        keyed.join(first, ["__u", "__i"], "left")
        .withColumn("has_earlier_purchase", flag)
        .drop("__u", "__i", "__t", "__first")
    )


TRANSFORMS: dict[str, Transform] = {
    "instacart_timeline": instacart_timeline,
    "earlier_purchase": earlier_purchase,
}


def apply_transform(df: DataFrame, name: str | None, params: Mapping[str, Any]) -> DataFrame:
    if not name:
        return df
    fn = TRANSFORMS.get(name)
    if fn is None:
        raise ConfigError(f"unknown mapping transform '{name}' (known: {', '.join(TRANSFORMS)})")
    return fn(df, params)
