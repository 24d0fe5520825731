"""Leave flagged users out of what is built on behaviour (``anomalies.exclude``).

Bots inflate views and poison item-CF; a profile, segment, training set or recommender
interaction built on their events misleads. With ``anomalies.exclude: [bot]`` (the default;
``[]`` switches it off, other anomaly types may be listed too), the profile, training-set,
scoring and recommender jobs drop the events of every user that ``detect_anomalies`` alerted
for those types in its latest run as of the job's day (point in time: never a later run).
The run records how many users it left out (``meta.runs`` metrics ``excluded_users``) and the
version of ``gold.user_anomalies`` it read (its inputs).
"""

from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shopperlake.core.config import Config
from shopperlake.core.errors import ConfigError
from shopperlake.core.lake import Lake
from shopperlake.core.schemas import ANOMALY_TYPES

log = logging.getLogger(__name__)
TABLE = "gold.user_anomalies"


def excluded_types(cfg: Config) -> tuple[str, ...]:
    value = cfg.get("anomalies.exclude", ["bot"])
    types = tuple(str(t) for t in (value or []))
    unknown = [t for t in types if t not in ANOMALY_TYPES]
    if unknown:
        raise ConfigError(
            f"anomalies.exclude: unknown anomaly type(s) {', '.join(unknown)} "
            f"(known: {', '.join(ANOMALY_TYPES)})"
        )
    return types


def flagged_users(lake: Lake, cfg: Config, as_of: dt.date | None) -> DataFrame | None:
    """``user_id`` of the users to leave out as of ``as_of`` (None: nothing to leave out)."""
    types = excluded_types(cfg)
    if not types or as_of is None or not lake.exists(TABLE):
        return None
    alerts = lake.read(TABLE).where(F.col("as_of") <= F.lit(as_of))
    latest = alerts.agg(F.max("as_of")).first()
    if latest is None or latest[0] is None:
        return None
    return (
        alerts.where((F.col("as_of") == F.lit(latest[0])) & F.col("anomaly_type").isin(*types))
        .select("user_id")
        .distinct()
    )


def without_flagged(
    events: DataFrame, lake: Lake, cfg: Config, as_of: dt.date | None, metrics: dict[str, float]
) -> DataFrame:
    """``events`` without the flagged users' rows; ``metrics['excluded_users']`` their count."""
    flagged = flagged_users(lake, cfg, as_of)
    if flagged is None:
        metrics["excluded_users"] = 0.0
        return events
    flagged = flagged.cache()
    n = flagged.count()
    metrics["excluded_users"] = float(n)
    if n == 0:
        return events
    log.info("leaving out %d users flagged as %s", n, ", ".join(excluded_types(cfg)))
    # alerts are capped at a share of the users: small enough to broadcast
    return events.join(F.broadcast(flagged), "user_id", "left_anti")
