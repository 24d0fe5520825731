"""Point-in-time rows of the return model: pure ``DataFrame -> DataFrame`` transforms.

A purchase line bought on day ``d`` gets
- the label: the same customer returns the same item in ``(ts, ts + H days]``;
- history features from events of days strictly before ``d`` only (the customer's, the item's,
  the customer-item pair's and the whole shop's purchases and returns up to ``d - 1``);
- the line itself and its own order (size, value, repeats of the item), calendar and the
  customer's country as of the snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

RECENT_DAYS = 90  # the "recent" history windows


def _day(ts: Column) -> Column:
    """Days since 1970-01-01 (UTC) of a timestamp."""
    return F.datediff(F.to_date(ts), F.lit("1970-01-01"))


def split_events(events: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(purchase lines, return lines) with ``day`` (days since 1970, UTC) and ``value``."""
    cols: list[Column | str] = [
        "event_id", "user_id", "item_id", "order_id", "ts", "price", "quantity",
        _day(F.col("ts")).alias("day"),
        (F.coalesce(F.col("price"), F.lit(0.0)) * F.coalesce(F.col("quantity"), F.lit(1)))
        .alias("value"),
    ]  # fmt: skip
    usable = events.where(F.col("item_id").isNotNull())
    purchases = usable.where(F.col("event_type") == "purchase").select(*cols)
    returns = usable.where(F.col("event_type") == "return").select(*cols)
    return purchases, returns


def with_labels(purchases: DataFrame, returns: DataFrame, horizon_days: int) -> DataFrame:
    """``label`` = 1 when the same user returns the same item after the purchase and within
    ``horizon_days`` days of it (ts strictly after the purchase, at most ts + H days)."""
    r = returns.select(
        F.col("user_id").alias("_u"), F.col("item_id").alias("_i"), F.col("ts").alias("_rts")
    )
    p = purchases.select("event_id", "user_id", "item_id", "ts")
    hit = (
        p.join(
            r,
            (p["user_id"] == r["_u"])
            & (p["item_id"] == r["_i"])
            & (r["_rts"] > p["ts"])
            & (r["_rts"] <= p["ts"] + F.expr(f"INTERVAL {int(horizon_days)} DAYS")),
            "left_semi",
        )
        .select("event_id")
        .withColumn("_hit", F.lit(1))
    )
    return (
        purchases.join(hit, "event_id", "left")
        .withColumn("label", F.coalesce(F.col("_hit"), F.lit(0)).cast("int"))
        .drop("_hit")
    )


def _before(
    daily: DataFrame, keys: Sequence[str], sums: Sequence[str], days: int | None = None
) -> DataFrame:
    """Per key and day present in ``daily``: the sums of ``sums`` over all earlier days (the
    ``days`` days before it when given)."""
    by = [F.col(k) for k in keys] or [F.lit(0)]  # the whole shop: one (small) partition
    start = Window.unboundedPreceding if days is None else -days
    w = Window.partitionBy(*by).orderBy("day").rangeBetween(start, -1)
    return daily.select(
        *keys, "day", *[F.coalesce(F.sum(c).over(w), F.lit(0)).alias(c) for c in sums]
    )


def _daily(purchases: DataFrame, returns: DataFrame, keys: Sequence[str]) -> DataFrame:
    bought = purchases.groupBy(*keys, "day").agg(
        F.count(F.lit(1)).alias("lines"),
        F.sum("value").alias("value"),
        F.countDistinct("order_id").alias("orders"),
        F.sum("price").alias("price_sum"),
        F.sum(F.log1p(F.greatest(F.col("quantity"), F.lit(0)))).alias("logqty_sum"),
        F.max(F.lit(1)).alias("buy_day"),
    )
    back = returns.groupBy(*keys, "day").agg(
        F.count(F.lit(1)).alias("ret_lines"),
        F.sum("value").alias("ret_value"),
        F.countDistinct("order_id").alias("ret_orders"),
    )
    return bought.join(back, [*keys, "day"], "full").fillna(0)


def history_features(
    purchases: DataFrame, returns: DataFrame, item_prior_lines: float
) -> DataFrame:
    """``purchases`` plus the history of each line's customer, item, customer-item pair and
    shop over the days before its purchase day."""
    sums = ["lines", "value", "orders", "price_sum", "logqty_sum", "ret_lines", "ret_value",
            "ret_orders"]  # fmt: skip
    cust_daily = _daily(purchases, returns, ["user_id"])
    cust = _before(cust_daily, ["user_id"], sums)
    w = Window.partitionBy("user_id").orderBy("day").rangeBetween(Window.unboundedPreceding, -1)
    bought_day = F.when(F.col("buy_day") > 0, F.col("day"))
    cust_days = cust_daily.select(
        "user_id",
        "day",
        F.min(bought_day).over(w).alias("_first"),
        F.max(bought_day).over(w).alias("_last"),
        F.max(F.when(F.col("ret_lines") > 0, F.col("day"))).over(w).alias("_last_return"),
    )
    recent = _before(cust_daily, ["user_id"], ["lines", "ret_lines"], RECENT_DAYS).select(
        "user_id", "day",
        F.col("lines").alias("cust_recent_lines"),
        F.col("ret_lines").alias("cust_recent_return_lines"),
        (F.col("ret_lines") / F.col("lines")).alias("cust_recent_return_rate"),
    )  # fmt: skip
    cust = cust.join(cust_days, ["user_id", "day"]).join(recent, ["user_id", "day"]).select(
        "user_id",
        "day",
        F.col("lines").alias("cust_past_lines"),
        F.col("orders").alias("cust_past_orders"),
        F.col("value").alias("cust_past_value"),
        F.col("ret_lines").alias("cust_past_return_lines"),
        F.col("ret_value").alias("cust_past_return_value"),
        F.col("ret_orders").alias("cust_past_cancel_orders"),
        (F.col("ret_lines") / F.col("lines")).alias("cust_return_rate"),
        (F.col("ret_orders") / F.col("orders")).alias("cust_cancel_rate"),
        (F.col("ret_value") / F.col("value")).alias("cust_return_value_share"),
        (F.col("day") - F.col("_first")).alias("cust_days_since_first"),
        (F.col("day") - F.col("_last")).alias("cust_days_since_last"),
        (F.col("day") - F.col("_last_return")).alias("cust_days_since_last_return"),
        (F.col("value") / F.col("lines")).alias("_cust_line_value"),
        "cust_recent_lines", "cust_recent_return_lines", "cust_recent_return_rate",
    )  # fmt: skip
    shop = _before(_daily(purchases, returns, []), [], ["lines", "ret_lines"]).select(
        "day", (F.col("ret_lines") / F.col("lines")).alias("_shop_rate")
    )
    item = (
        _before(_daily(purchases, returns, ["item_id"]), ["item_id"], sums)
        .join(shop, "day", "left")
        .select(
            "item_id",
            "day",
            F.col("lines").alias("item_past_lines"),
            F.col("ret_lines").alias("item_past_return_lines"),
            # toward the shop's past rate with the weight of `item_prior_lines` lines
            (
                (
                    F.col("ret_lines")
                    + F.lit(item_prior_lines) * F.coalesce("_shop_rate", F.lit(0.0))
                )
                / (F.col("lines") + F.lit(item_prior_lines))
            ).alias("item_return_rate"),
            (F.col("price_sum") / F.col("lines")).alias("_item_price"),
            (F.col("logqty_sum") / F.col("lines")).alias("_item_logqty"),
        )
    )
    pair_daily = _daily(purchases, returns, ["user_id", "item_id"])
    wp = (
        Window.partitionBy("user_id", "item_id")
        .orderBy("day")
        .rangeBetween(Window.unboundedPreceding, -1)
    )
    pair_last = pair_daily.select(
        "user_id", "item_id", "day",
        F.max(F.when(F.col("buy_day") > 0, F.col("day"))).over(wp).alias("_pair_last"),
    )  # fmt: skip
    pair = (
        _before(pair_daily, ["user_id", "item_id"], ["lines", "ret_lines"])
        .join(pair_last, ["user_id", "item_id", "day"])
        .select(
            "user_id", "item_id", "day",
            F.col("lines").alias("pair_past_lines"),
            F.col("ret_lines").alias("pair_past_return_lines"),
            (F.col("day") - F.col("_pair_last")).alias("pair_days_since_last"),
        )
    )  # fmt: skip
    return (
        purchases.join(cust, ["user_id", "day"], "left")
        .join(item, ["item_id", "day"], "left")
        .join(pair, ["user_id", "item_id", "day"], "left")
        .withColumns(
            {
                "price_vs_item": F.col("price") / F.col("_item_price"),
                "logqty_vs_item": F.log1p(F.greatest(F.col("quantity"), F.lit(0)))
                - F.col("_item_logqty"),
                "value_vs_customer": F.col("value") / F.col("_cust_line_value"),
            }
        )
        .drop("_item_price", "_item_logqty", "_cust_line_value")
    )


def order_features(lines: DataFrame) -> DataFrame:
    """The line's own order: its lines, value, distinct items and the item's repeats."""
    orders = lines.groupBy("order_id").agg(
        F.count(F.lit(1)).alias("order_lines"),
        F.sum("value").alias("order_value"),
        F.countDistinct("item_id").alias("order_items"),
    )
    orders = orders.join(
        lines.groupBy("order_id").agg(
            F.avg("item_return_rate").alias("order_mean_item_return_rate"),
            F.max("item_return_rate").alias("order_max_item_return_rate"),
        ),
        "order_id",
    )
    repeats = lines.groupBy("order_id", "item_id").agg(
        F.count(F.lit(1)).alias("item_repeats_in_order")
    )
    return lines.join(orders, "order_id", "left").join(repeats, ["order_id", "item_id"], "left")


NUMERIC = (
    "price", "quantity", "value", "order_lines", "order_value", "order_items",
    "item_repeats_in_order", "cust_past_lines", "cust_past_orders", "cust_past_value",
    "cust_past_return_lines", "cust_past_return_value", "cust_past_cancel_orders",
    "cust_return_rate", "cust_cancel_rate", "cust_return_value_share", "cust_days_since_first",
    "cust_days_since_last", "item_past_lines", "item_past_return_lines", "item_return_rate",
    "pair_past_lines", "pair_past_return_lines", "price_vs_item", "logqty_vs_item", "hour",
    "month", "new_customer", "cust_days_since_last_return", "cust_recent_lines",
    "cust_recent_return_lines", "cust_recent_return_rate", "pair_days_since_last",
    "value_vs_customer", "order_mean_item_return_rate", "order_max_item_return_rate",
)  # fmt: skip


def feature_maps(lines: DataFrame, countries: DataFrame) -> DataFrame:
    """``lines`` (history and order features joined) with ``numeric`` and ``categorical``
    maps; ``countries``: ``(user_id, country)`` as of the snapshot."""
    df = lines.join(countries, "user_id", "left").withColumns(
        {
            "hour": F.hour("ts").cast("double"),
            "month": F.month("ts").cast("double"),
            "new_customer": F.when(
                F.coalesce(F.col("cust_past_lines"), F.lit(0)) == 0, 1.0
            ).otherwise(0.0),
            "day_of_week": F.date_format("ts", "E"),
        }
    )
    numeric = F.create_map(*[x for c in NUMERIC for x in (F.lit(c), F.col(c).cast("double"))])
    categorical = F.create_map(
        F.lit("country"), F.col("country").cast("string"),
        F.lit("day_of_week"), F.col("day_of_week"),
    )  # fmt: skip
    return df.withColumns({"numeric": numeric, "categorical": categorical})
