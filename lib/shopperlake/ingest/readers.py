"""Read raw files of any supported format into string fields plus the raw record.

Output columns: the mapping's raw fields (strings), ``_raw`` (the record as read: the line for
text/JSON, the line for malformed CSV rows, else the fields as JSON), ``_source_file`` and
``_malformed`` (a parse failure: broken CSV/JSON, wrong field count). Nothing is dropped except
blank lines and lines matching the mapping's ``skip_regex`` (headers, comments).
"""

from __future__ import annotations

import re

from py4j.protocol import Py4JJavaError
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType
from pyspark.sql.utils import AnalysisException

from shopperlake.core.errors import InputError, SchemaError, root_cause
from shopperlake.ingest.mapping import EntityMapping

CORRUPT = "_corrupt_record"


def path_exists(spark: SparkSession, path: str) -> bool:
    """True when ``path`` (file, folder or glob, any Hadoop FS URI) matches something."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    try:
        fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
        matches = fs.globStatus(hpath)
    except Exception as exc:  # unknown scheme, unreachable store
        raise InputError(f"cannot access input {path}: {str(exc).splitlines()[0]}") from exc
    return matches is not None and len(matches) > 0


def _string_schema(fields: tuple[str, ...], corrupt: bool) -> StructType:
    cols = [StructField(f, StringType(), True) for f in fields]
    if corrupt:
        cols.append(StructField(CORRUPT, StringType(), True))
    return StructType(cols)


def _fields_json(fields: tuple[str, ...]) -> Column:
    return F.to_json(F.struct(*[F.col(f) for f in fields]), {"ignoreNullFields": "false"})


def read_raw(spark: SparkSession, path: str, m: EntityMapping) -> DataFrame:
    """Raw records of ``path`` as string fields + ``_raw``, ``_source_file``, ``_malformed``."""
    if not path_exists(spark, path):
        raise InputError(f"input path does not exist: {path}")
    try:
        if m.format == "csv":
            df = _read_csv(spark, path, m)
        elif m.format == "json":
            df = _read_json(spark, path, m)
        elif m.format == "text":
            df = _read_text(spark, path, m)
        else:
            df = _read_parquet(spark, path, m)
    except (AnalysisException, Py4JJavaError) as exc:
        raise InputError(f"cannot read {m.entity} input {path}: {root_cause(exc)}") from exc
    return df


def _lines(spark: SparkSession, path: str, m: EntityMapping) -> DataFrame:
    text = spark.read.text(path).select(
        F.regexp_replace("value", r"[\r\n]+$", "").alias("_raw"),
        F.input_file_name().alias("_source_file"),
    )
    text = text.where(F.trim(F.col("_raw")) != "")
    if m.skip_regex:
        text = text.where(~F.col("_raw").rlike(m.skip_regex))
    return text


def _read_text(spark: SparkSession, path: str, m: EntityMapping) -> DataFrame:
    assert m.delimiter_regex is not None
    stripped = F.regexp_replace(F.col("_raw"), r"^\s+|\s+$", "")
    parts = F.split(stripped, m.delimiter_regex)
    df = _lines(spark, path, m).withColumn("_parts", parts)
    cols = [F.col("_parts").getItem(i).alias(f) for i, f in enumerate(m.fields)]
    return df.select(
        *cols,
        "_raw",
        "_source_file",
        (F.size("_parts") != len(m.fields)).alias("_malformed"),
    )


def _read_json(spark: SparkSession, path: str, m: EntityMapping) -> DataFrame:
    schema = _string_schema(m.fields, corrupt=True)
    opts = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT, **m.options}
    parsed = F.from_json(F.col("_raw"), schema, opts).alias("_j")
    df = _lines(spark, path, m).select("_raw", "_source_file", parsed)
    return df.select(
        *[F.col(f"_j.{f}").alias(f) for f in m.fields],
        "_raw",
        "_source_file",
        (F.col(f"_j.{CORRUPT}").isNotNull() | F.col("_j").isNull()).alias("_malformed"),
    )


def _read_csv(spark: SparkSession, path: str, m: EntityMapping) -> DataFrame:
    opts = {"header": str(m.header).lower(), **m.options}
    if m.header:
        _check_header(spark, path, m, opts)
    reader = (
        spark.read.schema(_string_schema(m.fields, corrupt=True))
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .options(**opts)
    )
    df = reader.csv(path).withColumn("_source_file", F.input_file_name())
    raw = F.coalesce(F.col(CORRUPT), _fields_json(m.fields))
    return df.select(
        *m.fields,
        raw.alias("_raw"),
        "_source_file",
        F.col(CORRUPT).isNotNull().alias("_malformed"),
    )


def _check_header(spark: SparkSession, path: str, m: EntityMapping, opts: dict[str, str]) -> None:
    """A CSV whose header names other columns than the mapping is a schema error, not data."""
    header = spark.read.options(**opts).csv(path).columns
    named = [(i, h) for i, h in enumerate(header) if h and not h.startswith("_c")]
    # "Customer ID" in a header is the field customer_id (fields are identifiers)
    if len(header) != len(m.fields) or any(
        h != m.fields[i] and _identifier(h) != m.fields[i] for i, h in named
    ):
        raise SchemaError(f"CSV header of {path} is {header}, the mapping expects {list(m.fields)}")


def _identifier(header: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", header.strip().lower()).strip("_")


def _read_parquet(spark: SparkSession, path: str, m: EntityMapping) -> DataFrame:
    df = spark.read.parquet(path)
    missing = [f for f in m.fields if f not in df.columns]
    if missing:
        raise SchemaError(f"parquet input {path} lacks field(s) {', '.join(missing)}")
    fields = [F.col(f).cast("string").alias(f) for f in m.fields]
    out = df.select(*fields, F.input_file_name().alias("_source_file"))
    return out.select(
        *m.fields,
        _fields_json(m.fields).alias("_raw"),
        "_source_file",
        F.lit(False).alias("_malformed"),
    )
