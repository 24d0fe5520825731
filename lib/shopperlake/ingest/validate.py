"""Pure transforms from raw string fields to typed canonical rows, each with the list of
reasons it is invalid (empty = valid). No I/O here: the ingest job reads and writes.

Reason codes (stored in ``bronze.quarantine.reason``, ``; ``-joined):
``malformed_record``, ``missing_required:<col>``, ``bad_type:<col>``, ``bad_timestamp``,
``implausible_timestamp``, ``unknown_event_type:<value>``, ``implausible_price``,
``bad_quantity``, ``bad_rating``, ``missing_item_for:<event_type>``; with the mapping's
options, ``exact_duplicate`` (a record identical to an earlier one of the batch) and each
``reject`` rule's own reason (e.g. ``non_product_code``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, DoubleType, IntegerType, StringType, TimestampType

from shopperlake.core.config import Config
from shopperlake.core.errors import ConfigError
from shopperlake.core.schemas import EVENT_TYPES, SCHEMAS
from shopperlake.ingest.mapping import LINEAGE, EntityMapping

ITEM_EVENTS = ("view", "click", "add_to_cart", "remove_from_cart")
SEP = "\u001f"


@dataclass(frozen=True)
class Rules:
    """Plausibility bounds for one ingest run."""

    min_ts: dt.datetime
    max_ts: dt.datetime  # exclusive
    max_price: float
    max_quantity: int

    @classmethod
    def from_config(cls, cfg: Config, as_of: dt.date | None, today: dt.date | None = None) -> Rules:
        try:
            min_day = dt.date.fromisoformat(str(cfg.require("ingest.min_ts")))
        except ValueError:
            raise ConfigError("ingest.min_ts must be YYYY-MM-DD") from None
        anchor = as_of or today or dt.datetime.now(dt.UTC).date()
        max_day = anchor + dt.timedelta(days=1 + int(cfg.require("ingest.max_future_days")))
        return cls(
            min_ts=dt.datetime.combine(min_day, dt.time(), tzinfo=dt.UTC),
            max_ts=dt.datetime.combine(max_day, dt.time(), tzinfo=dt.UTC),
            max_price=float(cfg.require("ingest.max_price")),
            max_quantity=int(cfg.require("ingest.max_quantity")),
        )


def _mapped(m: EntityMapping, column: str) -> Column:
    if column in m.columns:
        return F.expr(m.columns[column])
    if column in m.constants:
        value: Any = m.constants[column]
        return F.lit(None if value is None else str(value))
    return F.lit(None).cast(StringType())


def _timestamp(m: EntityMapping) -> tuple[Column, Column]:
    """(raw text, parsed UTC timestamp) of the event time."""
    assert m.timestamp is not None
    raw = F.expr(m.timestamp.expr).cast(StringType())
    parsed = F.to_timestamp(raw, m.timestamp.format) if m.timestamp.format else F.to_timestamp(raw)
    if m.timestamp.timezone.upper() != "UTC":
        parsed = F.to_utc_timestamp(parsed, m.timestamp.timezone)
    return raw, parsed


def _event_type(m: EntityMapping, raw: Column) -> Column:
    cleaned = F.lower(F.trim(raw))
    if not m.event_type_map:
        return cleaned
    pairs: list[Column] = []
    for key, value in m.event_type_map.items():
        pairs += [F.lit(key), F.lit(value)]
    return F.coalesce(F.create_map(*pairs)[cleaned], cleaned)


def canonicalize(raw: DataFrame, m: EntityMapping, rules: Rules) -> DataFrame:
    """Typed canonical columns of ``m.entity`` plus ``_errors`` (array of reason codes),
    ``_raw``, ``_source_file``. Row count is preserved exactly."""
    schema = SCHEMAS[m.entity]
    targets = [f for f in schema.fields if f.name not in LINEAGE]
    df = raw
    errors: list[Column] = []
    typed: dict[str, Column] = {}
    for f in targets:
        if f.name == "ts" and m.entity == "events":
            ts_raw, ts = _timestamp(m)
            df = df.withColumn("__r_ts", ts_raw).withColumn("__c_ts", ts)
            errors.append(
                F.when(F.col("__r_ts").isNotNull() & F.col("__c_ts").isNull(), "bad_timestamp")
            )
            errors.append(
                F.when(
                    (F.col("__c_ts") < F.lit(rules.min_ts))
                    | (F.col("__c_ts") >= F.lit(rules.max_ts)),
                    "implausible_timestamp",
                )
            )
            typed["ts"] = F.col("__c_ts")
            continue
        value = _mapped(m, f.name).cast(StringType())
        if f.name == "event_type":
            value = _event_type(m, value)
        df = df.withColumn(f"__r_{f.name}", F.nullif(F.trim(value), F.lit("")))
        rawc = F.col(f"__r_{f.name}")
        if isinstance(f.dataType, StringType):
            typed[f.name] = rawc
            continue
        if isinstance(f.dataType, DateType):
            cast = F.to_date(rawc)
        elif isinstance(f.dataType, IntegerType):
            # "2.0" is an integer written as float by some exporters; "2.5" is not.
            as_double = rawc.cast(DoubleType())
            cast = F.when(as_double == F.floor(as_double), as_double.cast(IntegerType()))
        elif isinstance(f.dataType, TimestampType):
            cast = F.to_timestamp(rawc)
        else:
            cast = rawc.cast(f.dataType)
        df = df.withColumn(f"__c_{f.name}", cast)
        errors.append(
            F.when(rawc.isNotNull() & F.col(f"__c_{f.name}").isNull(), F.lit(f"bad_type:{f.name}"))
        )
        typed[f.name] = F.col(f"__c_{f.name}")

    key = m.key
    required = {key, *m.required}
    if m.entity == "events":
        required |= {"user_id", "ts", "event_type"}
    if m.entity == "promotions":
        required |= {"item_id", "start_date", "end_date"}
    for col in sorted(required):
        if col == key and not m.has_own_key:
            continue  # derived below, never missing
        src = F.col("__r_ts") if col == "ts" else F.col(f"__r_{col}")
        errors.append(F.when(src.isNull(), F.lit(f"missing_required:{col}")))

    if m.entity == "events":
        et = F.col("__r_event_type")
        errors.append(
            F.when(
                et.isNotNull() & ~et.isin(*EVENT_TYPES),
                F.concat(F.lit("unknown_event_type:"), et),
            )
        )
        errors.append(
            F.when(
                et.isin(*ITEM_EVENTS) & F.col("__r_item_id").isNull(),
                F.concat(F.lit("missing_item_for:"), et),
            )
        )
        qty = typed["quantity"]
        errors.append(F.when((qty <= 0) | (qty > rules.max_quantity), F.lit("bad_quantity")))
        rating = typed["rating"]
        errors.append(F.when((rating < 1) | (rating > 5), F.lit("bad_rating")))
    if m.entity == "promotions":
        period = F.col("__c_end_date") < F.col("__c_start_date")
        errors.append(F.when(period, F.lit("bad_period")))
    if "price" in typed:
        price = typed["price"]
        errors.append(
            F.when(
                (price < 0) | (price > rules.max_price) | F.isnan(price),
                F.lit("implausible_price"),
            )
        )

    errors += _reject_errors(raw, m)
    if m.reject_exact_duplicates:
        copy = F.row_number().over(Window.partitionBy("_raw").orderBy("_source_file"))
        df = df.withColumn("__copy", copy)
        errors.append(F.when(F.col("__copy") > 1, F.lit("exact_duplicate")))

    out = df.select(
        *[typed[f.name].cast(f.dataType).alias(f.name) for f in targets],
        # A record that did not parse has no trustworthy fields: that is its only reason.
        F.when(F.col("_malformed"), F.array(F.lit("malformed_record")))
        .otherwise(F.array_compact(F.array(*errors)))
        .alias("_errors"),
        "_raw",
        "_source_file",
    )
    if not m.has_own_key:
        out = with_derived_key(out, key, m.entity)
    if m.entity == "events" and m.order_id_from_event:
        out = out.withColumn(
            "order_id",
            F.when(
                F.col("order_id").isNull() & (F.col("event_type") == "purchase"),
                F.col("event_id"),
            ).otherwise(F.col("order_id")),
        )
    return out


def _reject_errors(raw: DataFrame, m: EntityMapping) -> list[Column]:
    """One error column per ``reject`` rule, each checked against the raw fields first so a
    rule that is not valid Spark SQL stops the run naming it, before anything is written."""
    out = []
    for rule in m.reject:
        try:
            cond = F.expr(rule.when)
            _ = raw.select(cond).schema  # analysed now: unknown fields, syntax errors
        except Exception as exc:  # ParseException / AnalysisException
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"reject rule '{rule.reason}' of the {m.entity} mapping is not valid Spark SQL "
                f"over the raw fields ({rule.when!r}): {first}"
            ) from None
        out.append(F.when(F.coalesce(cond, F.lit(False)), F.lit(rule.reason)))
    return out


def with_derived_key(df: DataFrame, key: str, entity: str) -> DataFrame:
    """A deterministic id from the raw record and its occurrence number among identical
    records: re-ingesting a file maps to the same ids, and two identical lines (two equal
    purchases on one day) stay two rows."""
    ordinal = F.row_number().over(Window.partitionBy("_raw").orderBy("_source_file"))
    digest = F.sha2(F.concat_ws(SEP, F.lit(entity), F.col("_raw"), ordinal.cast("string")), 256)
    return df.withColumn(key, F.concat(F.lit(entity[0]), F.substring(digest, 1, 31)))


def quarantine_rows(invalid: DataFrame, source: str, entity: str, run_id: str) -> DataFrame:
    """Rows of ``bronze.quarantine`` for invalid records (id stable across re-ingests)."""
    ordinal = F.row_number().over(Window.partitionBy("_raw").orderBy("_source_file"))
    qid = F.sha2(
        F.concat_ws(
            SEP, F.lit(source), F.lit(entity), F.coalesce("_raw", F.lit("")), ordinal.cast("string")
        ),
        256,
    )
    return invalid.select(
        qid.alias("quarantine_id"),
        F.lit(run_id).alias("run_id"),
        F.lit(source).alias("source"),
        F.col("_source_file").alias("source_file"),
        F.lit(entity).alias("entity"),
        F.col("_raw").alias("raw_record"),
        F.array_join("_errors", "; ").alias("reason"),
        F.current_timestamp().alias("quarantined_at"),
    )
