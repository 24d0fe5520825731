"""Schemas of the tables ShopperLake owns (the catalog in conf/catalog.yaml names them)."""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

EVENT_TYPES = (
    "view",
    "click",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "return",
    "review",
)

# The canonical event (design.md) plus partition and lineage columns.
EVENT_FIELDS = StructType(
    [
        StructField("event_id", StringType(), False),
        StructField("user_id", StringType(), False),
        StructField("session_id", StringType(), True),
        StructField("ts", TimestampType(), False),
        StructField("event_type", StringType(), False),
        StructField("item_id", StringType(), True),
        StructField("category", StringType(), True),
        StructField("price", DoubleType(), True),
        StructField("quantity", IntegerType(), True),
        StructField("order_id", StringType(), True),
        StructField("query", StringType(), True),
        StructField("rating", IntegerType(), True),
        StructField("device", StringType(), True),
        StructField("channel", StringType(), True),
    ]
)

EVENTS = StructType(
    [
        *EVENT_FIELDS.fields,
        StructField("event_date", DateType(), False),
        StructField("source", StringType(), False),
        StructField("ingest_run_id", StringType(), False),
    ]
)

ITEMS = StructType(
    [
        StructField("item_id", StringType(), False),
        StructField("category", StringType(), True),
        StructField("brand", StringType(), True),
        StructField("price", DoubleType(), True),
        StructField("title", StringType(), True),
        StructField("source", StringType(), False),
        StructField("updated_run_id", StringType(), False),
    ]
)

USERS = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("signup_date", DateType(), True),
        StructField("country", StringType(), True),
        StructField("age_band", StringType(), True),
        StructField("source", StringType(), False),
        StructField("updated_run_id", StringType(), False),
    ]
)

QUARANTINE = StructType(
    [
        StructField("quarantine_id", StringType(), False),
        StructField("run_id", StringType(), False),
        StructField("source", StringType(), False),
        StructField("source_file", StringType(), True),
        StructField("entity", StringType(), False),
        StructField("raw_record", StringType(), True),
        StructField("reason", StringType(), False),
        StructField("quarantined_at", TimestampType(), False),
    ]
)

RUNS = StructType(
    [
        StructField("run_id", StringType(), False),
        StructField("job", StringType(), False),
        StructField("env", StringType(), True),
        StructField("params", StringType(), True),
        StructField("as_of", DateType(), True),
        StructField("started_at", TimestampType(), False),
        StructField("finished_at", TimestampType(), True),
        StructField("status", StringType(), False),
        StructField("rows_read", LongType(), True),
        StructField("rows_written", LongType(), True),
        StructField("rows_duplicate", LongType(), True),
        StructField("rows_quarantined", LongType(), True),
        StructField("inputs", MapType(StringType(), LongType()), True),
        StructField("outputs", MapType(StringType(), LongType()), True),
        StructField("metrics", MapType(StringType(), DoubleType()), True),
        StructField("error", StringType(), True),
        StructField("run_date", DateType(), False),
    ]
)

SCHEMAS: dict[str, StructType] = {
    "events": EVENTS,
    "items": ITEMS,
    "users": USERS,
    "quarantine": QUARANTINE,
    "runs": RUNS,
}

__all__ = ["EVENTS", "EVENT_TYPES", "ITEMS", "QUARANTINE", "RUNS", "SCHEMAS", "USERS", "ArrayType"]
