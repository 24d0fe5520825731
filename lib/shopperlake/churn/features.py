"""Model features from a profile snapshot, and the feature transform fitted on training rows.

Profiles → ``numeric`` (map<string,double>) and ``categorical`` (map<string,string>): every
numeric or boolean profile column except ids, dates and configured exclusions, plus the
configured categorical columns. The :class:`FeatureTransform` (sign-log, standardise with
training mean/std, missing → mean; one-hot over a training vocabulary with an "other" slot) is
fitted on the train split only, saved as JSON with the model and applied by the same Spark
expression when training, evaluating and scoring.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    MapType,
    ShortType,
    StructType,
)

from shopperlake.churn.spec import ModelSpec
from shopperlake.core.errors import SchemaError

NUMERIC_TYPES = (DoubleType, FloatType, IntegerType, LongType, ShortType, DecimalType, BooleanType)
ALWAYS_EXCLUDED = {"user_id", "as_of_date", "cutoff", "label"}
OTHER = "__other__"


def numeric_columns(profiles: DataFrame, spec: ModelSpec) -> dict[str, Column]:
    """Feature name → numeric expression: top-level numeric/boolean columns, and the numeric
    fields of map<string, struct> columns (the per-window ``activity``) as
    ``<column>_<key>_<field>`` for every key present in the snapshot."""
    excluded = ALWAYS_EXCLUDED | set(spec.exclude_features)
    out: dict[str, Column] = {}
    for f in profiles.schema.fields:
        if f.name in excluded:
            continue
        if isinstance(f.dataType, NUMERIC_TYPES):
            out[f.name] = F.col(f.name).cast("double")
        elif isinstance(f.dataType, MapType) and isinstance(f.dataType.valueType, StructType):
            keys = sorted(
                r[0] for r in profiles.select(F.explode(F.map_keys(f.name))).distinct().collect()
            )
            for key in keys:
                for sub in f.dataType.valueType.fields:
                    if isinstance(sub.dataType, NUMERIC_TYPES):
                        name = f"{f.name}_{key}_{sub.name}"
                        if name not in excluded:
                            out[name] = F.col(f.name)[key][sub.name].cast("double")
    return out


def profile_features(profiles: DataFrame, spec: ModelSpec) -> DataFrame:
    """``(user_id, numeric, categorical)`` from one profile snapshot."""
    numeric = numeric_columns(profiles, spec)
    missing = [c for c in spec.categorical_features if c not in profiles.columns]
    if missing:
        raise SchemaError(f"categorical feature(s) {', '.join(missing)} not in the profiles")
    if not numeric:
        raise SchemaError("the profile snapshot has no numeric feature columns")
    num_map = F.create_map(*[x for c in sorted(numeric) for x in (F.lit(c), numeric[c])])
    if spec.categorical_features:
        cat_map = F.create_map(
            *[x for c in spec.categorical_features for x in (F.lit(c), F.col(c).cast("string"))]
        )
    else:
        cat_map = F.create_map().cast("map<string,string>")
    return profiles.select("user_id", num_map.alias("numeric"), cat_map.alias("categorical"))


def _signlog(x: Column) -> Column:
    return F.signum(x) * F.log1p(F.abs(x))


@dataclass
class FeatureTransform:
    numeric: list[str]
    log: bool
    mean: dict[str, float]
    std: dict[str, float]
    vocab: dict[str, list[str]] = field(default_factory=dict)

    @property
    def output_names(self) -> list[str]:
        names = list(self.numeric)
        for cat, values in self.vocab.items():
            names += [f"{cat}={v}" for v in values] + [f"{cat}={OTHER}"]
        return names

    @classmethod
    def fit(
        cls, train: DataFrame, log: bool, categorical: tuple[str, ...], vocab_size: int
    ) -> FeatureTransform:
        """Statistics from training rows only (never validation or test)."""
        first = train.select(F.map_keys("numeric").alias("k")).first()
        if first is None:
            raise SchemaError("cannot fit features on an empty training split")
        names = sorted(first["k"])
        values = {n: F.col("numeric")[n] for n in names}
        if log:
            values = {n: _signlog(v) for n, v in values.items()}
        aggs = []
        for n, v in values.items():
            aggs += [F.avg(v).alias(f"m_{n}"), F.stddev_pop(v).alias(f"s_{n}")]
        row = train.agg(*aggs).first()
        assert row is not None
        mean = {n: float(row[f"m_{n}"] or 0.0) for n in names}
        std = {n: float(row[f"s_{n}"] or 0.0) for n in names}
        std = {n: (s if s > 1e-12 and math.isfinite(s) else 1.0) for n, s in std.items()}
        vocab: dict[str, list[str]] = {}
        for cat in categorical:
            top = (
                train.select(F.col("categorical")[cat].alias("v"))
                .where(F.col("v").isNotNull())
                .groupBy("v")
                .count()
                .orderBy(F.desc("count"), "v")
                .limit(vocab_size)
                .collect()
            )
            vocab[cat] = [str(r["v"]) for r in top]
        return cls(numeric=names, log=log, mean=mean, std=std, vocab=vocab)

    def column(self) -> Column:
        """The dense ``array<float>`` feature vector as one Spark expression."""
        parts: list[Column] = []
        for n in self.numeric:
            x = F.col("numeric")[n]
            if self.log:
                x = _signlog(x)
            z = (x - F.lit(self.mean[n])) / F.lit(self.std[n])
            parts.append(F.coalesce(z, F.lit(0.0)))
        for cat, values in self.vocab.items():
            v = F.col("categorical")[cat]
            for value in values:
                parts.append(F.when(v == value, 1.0).otherwise(0.0))
            parts.append(
                F.when(v.isNotNull() & ~v.isin(*values), 1.0).otherwise(0.0)
                if values
                else F.when(v.isNotNull(), 1.0).otherwise(0.0)
            )
        return F.array(*parts).cast("array<float>")

    def apply(self, df: DataFrame) -> DataFrame:
        return df.withColumn("features", self.column())

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FeatureTransform:
        return cls(**json.loads(text))
