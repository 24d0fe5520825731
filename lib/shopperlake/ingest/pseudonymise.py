"""Pseudonymous user ids: a keyed hash (HMAC-SHA256) of every ``user_id`` written to bronze.

With ``ingest.pseudonymise_users: true`` the raw id never reaches a bronze table: events and
users carry ``HMAC-SHA256(key, raw id)`` (first 32 hex digits, 128 bits). The same key always
gives the same pseudonym, so re-ingest and later loads join up; without the key the raw id
cannot be recovered or checked by guessing. The key comes from the environment, never from
config files: ``$SHOPPERLAKE_PSEUDO_KEY`` or a file named by ``$SHOPPERLAKE_PSEUDO_KEY_FILE``
(a mounted secret). The hash runs in a pandas UDF so the key never appears in a Spark plan.
Quarantined rows keep the raw input line (``bronze.quarantine.raw_record``) so it can be fixed
and replayed: restrict access to that table.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shopperlake.core.errors import ConfigError

ENV_KEY = "SHOPPERLAKE_PSEUDO_KEY"
ENV_KEY_FILE = "SHOPPERLAKE_PSEUDO_KEY_FILE"
HEX_DIGITS = 32


def pseudo_key(env: Mapping[str, str] | None = None) -> bytes:
    """The key from ``$SHOPPERLAKE_PSEUDO_KEY`` or the file ``$SHOPPERLAKE_PSEUDO_KEY_FILE``."""
    env = os.environ if env is None else env
    value = env.get(ENV_KEY, "")
    if not value and env.get(ENV_KEY_FILE):
        path = Path(env[ENV_KEY_FILE])
        if not path.is_file():
            raise ConfigError(f"{ENV_KEY_FILE} names {path}, which is not a readable file")
        value = path.read_text().strip()
    if not value:
        raise ConfigError(
            f"ingest.pseudonymise_users is on but no key is set: export {ENV_KEY} or "
            f"{ENV_KEY_FILE} (a file holding the key)"
        )
    if len(value) < 16:
        raise ConfigError(f"the pseudonymisation key in {ENV_KEY} is shorter than 16 characters")
    return value.encode()


def pseudonym(key: bytes, user_id: str) -> str:
    return hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()[:HEX_DIGITS]


def pseudonymise(df: DataFrame, key: bytes, column: str = "user_id") -> DataFrame:
    """``df`` with ``column`` replaced by its pseudonym (nulls stay null)."""
    if column not in df.columns:
        return df

    @F.pandas_udf("string")  # type: ignore[call-overload]
    def hashed(ids: pd.Series) -> pd.Series:
        return pd.Series([None if u is None else pseudonym(key, u) for u in ids], dtype=object)

    return df.withColumn(column, hashed(F.col(column)))
