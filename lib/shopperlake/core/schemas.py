"""Schemas of the tables ShopperLake owns (the catalog in conf/catalog.yaml names them)."""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
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

# What the user detectors flag (gold.user_anomalies.anomaly_type); the generator plants the
# same types and anomalies.exclude names them.
ANOMALY_TYPES = ("bot", "order_burst", "review_spam", "return_abuse", "account_switch")

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

# Type-2 history of bronze.items / bronze.users: every version of a key's attributes is a row,
# valid over [valid_from, valid_to) (null valid_from: since the beginning; null valid_to: still
# valid), and exactly one row per key is current (the one with a null valid_to).
VALID_FROM, VALID_TO, IS_CURRENT = "valid_from", "valid_to", "is_current"
VERSION_FIELDS = (
    StructField(VALID_FROM, TimestampType(), True),
    StructField(VALID_TO, TimestampType(), True),
    StructField(IS_CURRENT, BooleanType(), False),
)

ITEMS = StructType(
    [
        StructField("item_id", StringType(), False),
        StructField("category", StringType(), True),
        StructField("brand", StringType(), True),
        StructField("price", DoubleType(), True),
        StructField("title", StringType(), True),
        # the catalogue level above category (grocery: GROCERY, PRODUCE, FUEL, ...)
        StructField("department", StringType(), True),
        *VERSION_FIELDS,
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
        *VERSION_FIELDS,
        StructField("source", StringType(), False),
        StructField("updated_run_id", StringType(), False),
    ]
)

# Planned promotions of an item (in a store: ``channel``) over the days [start_date, end_date]:
# where it is displayed and where it is advertised (a source's location codes; null: none).
# Known in advance (a shop plans them), so forecasts may use the promotions of the days they
# forecast. Insert-only MERGE on ``promotion_id``.
PROMOTIONS = StructType(
    [
        StructField("promotion_id", StringType(), False),
        StructField("item_id", StringType(), False),
        StructField("channel", StringType(), True),
        StructField("start_date", DateType(), False),
        StructField("end_date", DateType(), False),
        StructField("display", StringType(), True),
        StructField("mailer", StringType(), True),
        StructField("source", StringType(), False),
        StructField("ingest_run_id", StringType(), False),
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
    "promotions": PROMOTIONS,
    "quarantine": QUARANTINE,
    "runs": RUNS,
}

__all__ = [
    "EVENTS",
    "EVENT_TYPES",
    "ITEMS",
    "PROMOTIONS",
    "QUARANTINE",
    "RUNS",
    "SCHEMAS",
    "USERS",
    "ArrayType",
]

# -- gold: user profiles and segments (build_profiles, build_segments) -------------------------

# Activity of one window (the key of ``user_profiles.activity``: "7d", "30d", ..., "all").
WINDOW_ACTIVITY = StructType(
    [
        StructField("events", LongType(), True),
        StructField("views", LongType(), True),
        StructField("clicks", LongType(), True),
        StructField("searches", LongType(), True),
        StructField("add_to_carts", LongType(), True),
        StructField("remove_from_carts", LongType(), True),
        StructField("purchase_events", LongType(), True),
        StructField("returns", LongType(), True),
        StructField("reviews", LongType(), True),
        StructField("sessions", LongType(), True),
        StructField("active_days", LongType(), True),
        StructField("purchases", LongType(), True),
        StructField("spend", DoubleType(), True),
    ]
)

CATEGORY_SHARE = StructType(
    [StructField("category", StringType(), True), StructField("share", DoubleType(), True)]
)

USER_PROFILES = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("first_event_ts", TimestampType(), True),
        StructField("last_event_ts", TimestampType(), True),
        StructField("tenure_days", IntegerType(), True),
        StructField("days_since_last_event", IntegerType(), True),
        StructField("first_purchase_date", DateType(), True),
        StructField("last_purchase_date", DateType(), True),
        StructField("recency_days", IntegerType(), True),
        StructField("frequency", LongType(), True),
        StructField("monetary_total", DoubleType(), True),
        StructField("avg_order_value", DoubleType(), True),
        StructField("purchase_days", LongType(), True),
        StructField("btyd_frequency", DoubleType(), True),
        StructField("btyd_recency", DoubleType(), True),
        StructField("btyd_T", DoubleType(), True),
        StructField("btyd_monetary_value", DoubleType(), True),
        StructField("activity", MapType(StringType(), WINDOW_ACTIVITY), True),
        StructField("sessions", LongType(), True),
        StructField("sessions_with_view", LongType(), True),
        StructField("sessions_with_cart", LongType(), True),
        StructField("sessions_with_purchase", LongType(), True),
        StructField("view_to_cart_rate", DoubleType(), True),
        StructField("cart_to_purchase_rate", DoubleType(), True),
        StructField("cart_abandonment_rate", DoubleType(), True),
        StructField("returned_orders", LongType(), True),
        StructField("return_rate", DoubleType(), True),
        StructField("returned_lines", LongType(), True),
        StructField("returned_value", DoubleType(), True),
        StructField("line_return_rate", DoubleType(), True),
        StructField("review_count", LongType(), True),
        StructField("avg_rating", DoubleType(), True),
        StructField("top_categories", ArrayType(CATEGORY_SHARE), True),
        StructField("category_shares", MapType(StringType(), DoubleType()), True),
        StructField("price_level", DoubleType(), True),
        StructField("preferred_day_of_week", StringType(), True),
        StructField("preferred_hour", IntegerType(), True),
        StructField("device_mix", MapType(StringType(), DoubleType()), True),
        StructField("channel_mix", MapType(StringType(), DoubleType()), True),
        StructField("mean_interpurchase_days", DoubleType(), True),
        StructField("std_interpurchase_days", DoubleType(), True),
        StructField("trend_recent_events", LongType(), True),
        StructField("trend_prior_events", LongType(), True),
        StructField("activity_trend", DoubleType(), True),
        StructField("signup_date", DateType(), True),
        StructField("country", StringType(), True),
        StructField("age_band", StringType(), True),
        StructField("tags", ArrayType(StringType()), True),
        StructField("as_of_date", DateType(), False),
    ]
)

USER_SEGMENTS = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("r_score", IntegerType(), True),
        StructField("f_score", IntegerType(), True),
        StructField("m_score", IntegerType(), True),
        StructField("fm_score", IntegerType(), True),
        StructField("rfm_code", StringType(), True),
        StructField("rfm_segment", StringType(), False),
        StructField("cluster_id", IntegerType(), True),
        StructField("cluster_description", StringType(), True),
        StructField("as_of_date", DateType(), False),
    ]
)

SEGMENT_SUMMARY = StructType(
    [
        StructField("kind", StringType(), False),
        StructField("segment", StringType(), False),
        StructField("cluster_id", IntegerType(), True),
        StructField("description", StringType(), True),
        StructField("users", LongType(), False),
        StructField("share", DoubleType(), False),
        StructField("mean_recency_days", DoubleType(), True),
        StructField("median_recency_days", DoubleType(), True),
        StructField("mean_frequency", DoubleType(), True),
        StructField("median_frequency", DoubleType(), True),
        StructField("mean_monetary_total", DoubleType(), True),
        StructField("median_monetary_total", DoubleType(), True),
        StructField("mean_avg_order_value", DoubleType(), True),
        StructField("median_avg_order_value", DoubleType(), True),
        StructField("mean_tenure_days", DoubleType(), True),
        StructField("median_tenure_days", DoubleType(), True),
        StructField("mean_days_since_last_event", DoubleType(), True),
        StructField("median_days_since_last_event", DoubleType(), True),
        StructField("feature_means", MapType(StringType(), DoubleType()), True),
        StructField("feature_medians", MapType(StringType(), DoubleType()), True),
        StructField("as_of_date", DateType(), False),
    ]
)

SEGMENT_CENTROIDS = StructType(
    [
        StructField("cluster_id", IntegerType(), False),
        StructField("k", IntegerType(), False),
        StructField("features", ArrayType(StringType()), False),
        StructField("centroid", ArrayType(DoubleType()), False),
        StructField("centroid_z", ArrayType(DoubleType()), False),
        StructField("users", LongType(), False),
        StructField("description", StringType(), True),
        StructField("silhouette", DoubleType(), True),
        StructField("matched_as_of_date", DateType(), True),
        StructField("as_of_date", DateType(), False),
    ]
)

SCHEMAS.update(
    {
        "user_profiles": USER_PROFILES,
        "user_segments": USER_SEGMENTS,
        "segment_summary": SEGMENT_SUMMARY,
        "segment_centroids": SEGMENT_CENTROIDS,
    }
)

# -- gold: churn / propensity (build_training_set, train, score) --------------------------------

TRAINING_SETS = StructType(
    [
        StructField("model", StringType(), False),
        StructField("cutoff", DateType(), False),
        StructField("user_id", StringType(), False),
        StructField("label", IntegerType(), False),
        StructField("split", StringType(), False),
        StructField("numeric", MapType(StringType(), DoubleType()), False),
        StructField("categorical", MapType(StringType(), StringType()), False),
        StructField("run_id", StringType(), False),
    ]
)

MODEL_METRICS = StructType(
    [
        StructField("model", StringType(), False),
        StructField("version", StringType(), False),
        StructField("algorithm", StringType(), False),
        StructField("split", StringType(), False),
        StructField("metric", StringType(), False),
        StructField("value", DoubleType(), True),
        StructField("ci_low", DoubleType(), True),
        StructField("ci_high", DoubleType(), True),
        StructField("reference", StringType(), True),
        StructField("trained_at", TimestampType(), False),
        StructField("run_id", StringType(), False),
    ]
)

# score: calibrated probability; score, risk_band and top_reasons are null for users outside
# the model's population, whose `population` says why (in_population | no_purchase_in_lookback
# | inactive_in_lookback).
SCORES = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("score", DoubleType(), True),
        StructField("risk_band", StringType(), True),
        StructField("top_reasons", ArrayType(StringType()), True),
        StructField("model_version", StringType(), False),
        StructField("population", StringType(), False),
        StructField("as_of_date", DateType(), False),
    ]
)

# Users outside the population (retention.outside_population set to a tier) have no score,
# risk band or value at stake.
RETENTION_TARGETS = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("score", DoubleType(), True),
        StructField("risk_band", StringType(), True),
        StructField("rfm_segment", StringType(), True),
        StructField("customer_value", DoubleType(), False),
        StructField("value_at_stake", DoubleType(), True),
        StructField("action", StringType(), False),
        StructField("top_reasons", ArrayType(StringType()), True),
        StructField("model_version", StringType(), False),
        StructField("population", StringType(), False),
        StructField("as_of_date", DateType(), False),
    ]
)

SCHEMAS.update(
    {
        "training_sets": TRAINING_SETS,
        "model_metrics": MODEL_METRICS,
        "scores": SCORES,
        "retention_targets": RETENTION_TARGETS,
    }
)

# -- gold: recommender (train / score --model recommender) -------------------------------------

RECOMMENDATIONS = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("as_of_date", DateType(), False),
        StructField("rank", IntegerType(), False),
        StructField("item_id", StringType(), False),
        StructField("score", DoubleType(), False),
        StructField("source", StringType(), False),
        StructField("model_version", StringType(), False),
    ]
)

SIMILAR_ITEMS = StructType(
    [
        StructField("item_id", StringType(), False),
        StructField("rank", IntegerType(), False),
        StructField("similar_item_id", StringType(), False),
        StructField("score", DoubleType(), False),
        StructField("model_version", StringType(), False),
        StructField("as_of_date", DateType(), False),
    ]
)

SCHEMAS.update({"recommendations": RECOMMENDATIONS, "similar_items": SIMILAR_ITEMS})

# -- gold: return prediction (build_training_set / train / score --model returns) ------------

RETURN_TRAINING_SET = StructType(
    [
        StructField("as_of_date", DateType(), False),
        StructField("line_id", StringType(), False),
        StructField("order_id", StringType(), True),
        StructField("user_id", StringType(), False),
        StructField("item_id", StringType(), False),
        StructField("ts", TimestampType(), False),
        StructField("label", IntegerType(), False),
        StructField("split", StringType(), False),
        StructField("numeric", MapType(StringType(), DoubleType()), False),
        StructField("categorical", MapType(StringType(), StringType()), False),
        StructField("run_id", StringType(), False),
    ]
)

# One row per open order line (bought in the H days up to the as-of date, not yet returned):
# calibrated probability that the customer returns it within H days of the purchase, its
# band, the order's risk (max over its lines) and the features that push the line's risk up.
RETURN_RISK = StructType(
    [
        StructField("as_of_date", DateType(), False),
        StructField("line_id", StringType(), False),
        StructField("order_id", StringType(), True),
        StructField("user_id", StringType(), False),
        StructField("item_id", StringType(), False),
        StructField("ts", TimestampType(), False),
        StructField("probability", DoubleType(), False),
        StructField("risk_band", StringType(), False),
        StructField("order_probability", DoubleType(), False),
        StructField("top_reasons", ArrayType(StringType()), True),
        StructField("model_version", StringType(), False),
    ]
)

SCHEMAS.update({"return_training_set": RETURN_TRAINING_SET, "return_risk": RETURN_RISK})

# -- meta: erasure requests (erase) ------------------------------------------------------------

ERASURES = StructType(
    [
        StructField("request_id", StringType(), False),
        StructField("requested_at", TimestampType(), False),
        StructField("users", IntegerType(), False),
        StructField("rows_deleted", MapType(StringType(), LongType()), False),
        StructField("models_to_retrain", ArrayType(StringType()), False),
        StructField("vacuum_due", TimestampType(), False),
        StructField("run_id", StringType(), False),
    ]
)
SCHEMAS.update({"erasures": ERASURES})

# One row per quality-gate check of a job run (shopperlake.core.quality).
QUALITY_CHECKS = StructType(
    [
        StructField("run_id", StringType(), False),
        StructField("job", StringType(), False),
        StructField("as_of", DateType(), True),
        StructField("table_name", StringType(), False),
        StructField("check", StringType(), False),
        StructField("level", StringType(), False),
        StructField("status", StringType(), False),
        StructField("observed", StringType(), True),
        StructField("expected", StringType(), True),
        StructField("scope", StringType(), True),
        StructField("checked_at", TimestampType(), False),
        StructField("run_date", DateType(), False),
    ]
)
SCHEMAS.update({"quality_checks": QUALITY_CHECKS})

# -- gold: sequences (build_sequences) --------------------------------------------------------

# One row per user and as-of date: the last N item events, oldest first (shopperlake.sequences).
USER_SEQUENCES = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("as_of_date", DateType(), False),
        StructField("length", IntegerType(), False),
        StructField("item_ids", ArrayType(StringType()), False),
        StructField("event_types", ArrayType(StringType()), False),
        StructField("categories", ArrayType(StringType()), True),
        StructField("gap_seconds", ArrayType(LongType()), False),
        StructField("positions", ArrayType(IntegerType()), False),
        StructField("last_ts", TimestampType(), False),
        StructField("events_total", LongType(), False),
    ]
)
SCHEMAS.update({"user_sequences": USER_SEQUENCES})

# One row per user, as-of date and rank: SASRec's next items (shopperlake.sequences.score).
NEXT_ITEM_RECOMMENDATIONS = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("as_of_date", DateType(), False),
        StructField("rank", IntegerType(), False),
        StructField("item_id", StringType(), False),
        StructField("score", DoubleType(), False),
        StructField("model_version", StringType(), False),
    ]
)
SCHEMAS.update({"next_item_recommendations": NEXT_ITEM_RECOMMENDATIONS})

# -- gold: demand forecasting (forecast, backtest) ---------------------------------------------

# One row per series, as-of date and target day: point forecast and conformal intervals of
# the method chosen for the series on validation windows before the as-of date.
DEMAND_FORECASTS = StructType(
    [
        StructField("level", StringType(), False),
        StructField("series_id", StringType(), False),
        StructField("as_of_date", DateType(), False),
        StructField("target_date", DateType(), False),
        StructField("step", IntegerType(), False),
        StructField("forecast", DoubleType(), False),
        StructField("lo_80", DoubleType(), False),
        StructField("hi_80", DoubleType(), False),
        StructField("lo_95", DoubleType(), False),
        StructField("hi_95", DoubleType(), False),
        StructField("method", StringType(), False),
        StructField("validation_mae", DoubleType(), True),
        StructField("model_version", StringType(), False),
    ]
)

# One row per series, origin and method (every candidate, and `selected`: the method chosen
# for the series on validation windows before the origin, named in chosen_method).
FORECAST_BACKTESTS = StructType(
    [
        StructField("level", StringType(), False),
        StructField("series_id", StringType(), False),
        StructField("origin", DateType(), False),
        StructField("method", StringType(), False),
        StructField("chosen_method", StringType(), True),
        StructField("horizon", IntegerType(), False),
        StructField("demand", DoubleType(), False),
        StructField("abs_error", DoubleType(), False),
        StructField("wape", DoubleType(), True),
        StructField("scale", DoubleType(), True),
        StructField("mase", DoubleType(), True),
        StructField("coverage_80", DoubleType(), False),
        StructField("coverage_95", DoubleType(), False),
        StructField("run_id", StringType(), False),
    ]
)

SCHEMAS.update({"demand_forecasts": DEMAND_FORECASTS, "forecast_backtests": FORECAST_BACKTESTS})

# -- gold: anomalies (detect_anomalies) --------------------------------------------------------

# One row per source, event type and day: the events that arrived against a seasonal
# baseline of the days before (same weekday, robust trend) and its interval.
FEED_ANOMALIES = StructType(
    [
        StructField("source", StringType(), False),
        StructField("event_type", StringType(), False),
        StructField("event_date", DateType(), False),
        StructField("observed", LongType(), False),
        StructField("expected", DoubleType(), True),
        StructField("lo", DoubleType(), True),
        StructField("hi", DoubleType(), True),
        StructField("status", StringType(), False),
        StructField("baseline_days", IntegerType(), False),
        StructField("run_id", StringType(), False),
    ]
)

USER_ANOMALIES = StructType(
    [
        StructField("user_id", StringType(), False),
        StructField("as_of", DateType(), False),
        StructField("anomaly_type", StringType(), False),
        StructField("score", DoubleType(), False),
        StructField("rank", IntegerType(), False),
        StructField("detector", StringType(), False),
        StructField("reasons", ArrayType(StringType()), False),
        StructField("run_id", StringType(), False),
    ]
)

SCHEMAS.update({"feed_anomalies": FEED_ANOMALIES, "user_anomalies": USER_ANOMALIES})
