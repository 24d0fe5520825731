"""Petastorm input for every Horovod-trained model (churn/propensity DNN, two-tower recommender).

``materialise`` writes a Spark DataFrame to Parquet with Petastorm's ``make_spark_converter``
(cache dir from ``SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF``), with every array column
split into one scalar column per element (``wide``). ``batches`` opens a ``make_batch_reader``
over those files, sharded by Horovod rank, and yields a ``tf.data.Dataset`` of batches of
exactly ``batch_size`` rows.

Why not ``converter.make_tf_dataset``: it unrolls every row group into single rows
(``flat_map(from_tensor_slices)``) and batches them again, and an ``array<float>`` column
is decoded row by row through Python objects. Scalar Parquet columns decode in Arrow's C++,
and ``Dataset.rebatch`` regroups whole row-group batches without per-row work. Measured by
``bench/bench_training.py`` (README: training benchmark).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType

from shopperlake.core.config import Config
from shopperlake.core.storage import Storage


def use_cache_dir(spark: SparkSession, cfg: Config, lake_root: str) -> str:
    """Set the session's Petastorm cache dir (``training.cache``, see
    :class:`shopperlake.core.storage.Storage`), what ``materialise`` writes under; return it."""
    from petastorm.spark import SparkDatasetConverter

    url = Storage.from_config(cfg, lake_root).cache
    spark.conf.set(SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF, url)
    return url


def wide(df: DataFrame, widths: dict[str, int]) -> DataFrame:
    """``df`` with each array column ``c`` of ``widths`` replaced by ``c_0 .. c_{n-1}``
    (float32); other columns kept as they are."""
    cols: list[Any] = []
    for field in df.schema.fields:
        if field.name in widths:
            if not isinstance(field.dataType, ArrayType):
                raise TypeError(f"column {field.name!r} is not an array")
            cols.extend(
                F.col(field.name)[i].cast("float").alias(f"{field.name}_{i}")
                for i in range(widths[field.name])
            )
        else:
            cols.append(F.col(field.name))
    return df.select(*cols)


def wide_names(column: str, width: int) -> list[str]:
    return [f"{column}_{i}" for i in range(width)]


def materialise(
    spark: SparkSession, df: DataFrame, parts: int, widths: dict[str, int] | None = None
) -> Any:
    """A Petastorm ``SparkDatasetConverter`` over ``df`` in ``parts`` Parquet files (each at
    least one row group: Petastorm shards by row group, so give it >= 2 per Horovod process)."""
    from petastorm.spark import make_spark_converter

    out = wide(df, widths) if widths else df
    return make_spark_converter(out.repartition(parts))


@contextmanager
def batches(
    converter: Any,
    batch_size: int,
    shard: int | None = None,
    shard_count: int | None = None,
    seed: int | None = None,
    workers: int = 2,
    shuffle: bool = True,
) -> Iterator[Any]:
    """An endless ``tf.data.Dataset`` of reader batches (named tuples of column tensors), each
    ``batch_size`` rows, over this rank's shard; row groups and rows within them shuffled
    with ``seed`` when ``shuffle``. Map it to model inputs, then ``prefetch``. The reader stops
    when the context exits."""
    from petastorm import make_batch_reader
    from petastorm.tf_utils import make_petastorm_dataset

    reader = make_batch_reader(
        converter.file_urls,
        num_epochs=None,
        workers_count=workers,
        cur_shard=shard,
        shard_count=shard_count,
        shuffle_row_groups=shuffle,
        shuffle_rows=shuffle,
        seed=seed,
    )
    try:
        yield make_petastorm_dataset(reader).rebatch(batch_size)
    finally:
        reader.stop()
        reader.join()


def stack(batch: Any, names: Sequence[str]) -> Any:
    """The scalar columns ``names`` of a reader batch as one ``(rows, len(names))`` tensor."""
    import tensorflow as tf

    return tf.stack([getattr(batch, n) for n in names], axis=1)
