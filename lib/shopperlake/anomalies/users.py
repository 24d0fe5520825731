"""User-level anomalies: bots, order bursts, review spam, return abuse, account switches.

Per user, over the ``anomalies.users.days`` days up to the as-of day (point in time: nothing
after its end is read), :func:`user_features` computes behaviour features on Spark (table
below). Two detectors score them, per anomaly type:

* **rules** from config (``anomalies.users.rules``): a Spark SQL condition over the features,
  the anomaly type it signals and a reason template (``{feature}`` placeholders) in words an
  analyst can act on;
* **robust peer z-scores**: per feature of ``anomalies.users.robust`` (by type), the user's
  distance from the median of the peer group (``peer_by``: country as of the snapshot; groups
  under ``min_peers`` users fall back to everyone) in units of 1.4826 × MAD; where half the
  peers or more share one value (MAD 0) the scale is 1.2533 × the mean absolute deviation,
  and 1 if that is 0 too; for counts the scale is at least 1 (with most peers at 0, one
  return would otherwise be dozens of SDs). A heavy but genuine buyer is compared with the
  users around them, and only features that separate abuse from heavy use are scored.

Score per user and type, in [0, 1]: ``0.5 × (a rule fired) + 0.5 × z / (z + z_half)`` with
``z`` the largest positive peer z-score of the type's features, so every fired rule ranks
above every unfired one and z orders within. Alerts: a fired rule or ``z >= z_alert``, at most
``budget`` × scored users per type (highest scores first).

============================ ============================================================
feature                      meaning (window: the last ``days`` days)
============================ ============================================================
events, views, clicks,       counts of the user's events by type; ``orders`` distinct order
carts, purchases, orders,    ids of purchases; ``cart_units`` units carted
returns, reviews, cart_units
sessions, view_only_share    sessions; share of sessions with views and no cart or purchase
views_per_session            views / sessions
active_hours                 distinct hours of the day (0-23) with an event
median_gap_s                 median seconds between consecutive browsing events (view, click,
                             search, cart) of a session: the lines of one order share a time
peak_rate                    browsing events per minute of the user's busiest session (10+)
max_orders_1h                most orders placed within any 60 minutes
return_rate                  returns / purchases (0 without purchases)
reviews_unpurchased          reviews of items the user had not bought before the review
ring_size                    most users reviewing one item on one day with the same extreme
                             rating (1 or 5) without having bought it, over the user's reviews
new_pair_orders,             orders and spend of the last ``recent_days`` on device x channel
new_pair_spend               pairs the user never used before (only users with earlier
                             sessions: a newcomer has no habits to switch from)
============================ ============================================================
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.utils import AnalysisException, ParseException

from shopperlake.core.config import Config
from shopperlake.core.errors import ConfigError
from shopperlake.core.schemas import ANOMALY_TYPES
from shopperlake.profiles.features import point_in_time, window_start

COUNT_FEATURES = (
    "events", "views", "clicks", "carts", "cart_units", "purchases", "orders", "returns",
    "reviews", "sessions", "active_hours", "max_orders_1h", "reviews_unpurchased", "ring_size",
    "new_pair_orders",
)  # fmt: skip
RATE_FEATURES = (
    "view_only_share", "views_per_session", "median_gap_s", "peak_rate", "return_rate",
    "new_pair_spend",
)  # fmt: skip
FEATURES = COUNT_FEATURES + RATE_FEATURES
PLACEHOLDER = re.compile(r"\{([a-z_0-9]+)\}")
MAD_SCALE, MEAN_AD_SCALE = 1.4826, 1.2533
BROWSING = ("view", "click", "search", "add_to_cart", "remove_from_cart")


@dataclass(frozen=True)
class Rule:
    name: str
    anomaly_type: str
    when: str
    reason: str


@dataclass(frozen=True)
class UserSettings:
    days: int = 28
    recent_days: int = 7
    peer_by: tuple[str, ...] = ("country",)
    min_peers: int = 30
    z_half: float = 5.0
    z_alert: float = 10.0
    budget: float = 0.01
    rules: tuple[Rule, ...] = ()
    robust: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Config) -> UserSettings:
        block = cfg.get("anomalies.users") or {}
        keys = {"days", "recent_days", "peer_by", "min_peers", "z_half", "z_alert", "budget",
                "rules", "robust"}  # fmt: skip
        unknown = set(block) - keys
        if unknown:
            raise ConfigError(f"anomalies.users: unknown key(s) {', '.join(sorted(unknown))}")
        rules = []
        for name, spec in (block.get("rules") or {}).items():
            if not isinstance(spec, Mapping) or set(spec) != {"type", "when", "reason"}:
                raise ConfigError(
                    f"anomalies.users.rules.{name}: needs exactly type, when and reason"
                )
            rules.append(Rule(str(name), str(spec["type"]), str(spec["when"]),
                              str(spec["reason"])))  # fmt: skip
        robust_block = block.get("robust") or {}
        robust = {str(t): tuple(str(f) for f in fs) for t, fs in robust_block.items()}
        out = cls(
            days=int(block.get("days", cls.days)),
            recent_days=int(block.get("recent_days", cls.recent_days)),
            peer_by=tuple(block.get("peer_by", cls.peer_by)),
            min_peers=int(block.get("min_peers", cls.min_peers)),
            z_half=float(block.get("z_half", cls.z_half)),
            z_alert=float(block.get("z_alert", cls.z_alert)),
            budget=float(block.get("budget", cls.budget)),
            rules=tuple(rules),
            robust=robust,
        )
        out.check()
        return out

    def check(self) -> None:
        """Names every unknown anomaly type, feature or placeholder (before any Spark work)."""
        problems = []
        if not 1 <= self.recent_days <= self.days:
            problems.append(f"need 1 <= recent_days ({self.recent_days}) <= days ({self.days})")
        if not 0 < self.budget <= 1 or self.z_half <= 0 or self.min_peers < 1:
            problems.append("budget must be in (0, 1], z_half > 0, min_peers >= 1")
        for rule in self.rules:
            if rule.anomaly_type not in ANOMALY_TYPES:
                problems.append(f"rule {rule.name}: unknown anomaly type '{rule.anomaly_type}'")
            for name in PLACEHOLDER.findall(rule.reason):
                if name not in FEATURES:
                    problems.append(f"rule {rule.name}: unknown feature '{{{name}}}' in reason")
        for anomaly_type, features in self.robust.items():
            if anomaly_type not in ANOMALY_TYPES:
                problems.append(f"robust: unknown anomaly type '{anomaly_type}'")
            bad = [f for f in features if f not in FEATURES]
            if bad:
                problems.append(f"robust.{anomaly_type}: unknown feature(s) {', '.join(bad)}")
        if problems:
            raise ConfigError(
                "anomalies.users: " + "; ".join(problems)
                + f" (anomaly types: {', '.join(ANOMALY_TYPES)}; features: {', '.join(FEATURES)})"
            )  # fmt: skip


def user_features(events: DataFrame, as_of: dt.date, s: UserSettings) -> DataFrame:
    """One row per user with an event in the window, every column of :data:`FEATURES`."""
    first = window_start(as_of, s.days)
    recent = window_start(as_of, s.recent_days)
    history = point_in_time(events, as_of).select(
        "user_id", "session_id", "ts", "event_type", "item_id", "price", "quantity", "order_id",
        "rating", "device", "channel", "event_date",
        F.unix_timestamp("ts").alias("t"),
    )  # fmt: skip
    w = history.where(F.col("event_date") >= F.lit(first)).cache()  # read by every aggregation
    is_type = {t: F.col("event_type") == t for t in
               ("view", "click", "add_to_cart", "purchase", "return", "review")}  # fmt: skip
    value = F.coalesce(F.col("price"), F.lit(0.0)) * F.coalesce(F.col("quantity"), F.lit(1))
    counts = w.groupBy("user_id").agg(
        F.count(F.lit(1)).alias("events"),
        F.count(F.when(is_type["view"], 1)).alias("views"),
        F.count(F.when(is_type["click"], 1)).alias("clicks"),
        F.count(F.when(is_type["add_to_cart"], 1)).alias("carts"),
        F.sum(F.when(is_type["add_to_cart"], F.coalesce("quantity", F.lit(1))).otherwise(0)).alias(
            "cart_units"
        ),
        F.count(F.when(is_type["purchase"], 1)).alias("purchases"),
        F.countDistinct(F.when(is_type["purchase"], F.col("order_id"))).alias("orders"),
        F.count(F.when(is_type["return"], 1)).alias("returns"),
        F.count(F.when(is_type["review"], 1)).alias("reviews"),
        F.countDistinct("session_id").alias("sessions"),
        F.countDistinct(F.hour("ts")).alias("active_hours"),
    )
    in_session = w.where(F.col("session_id").isNotNull())
    # gaps and pace from browsing only: the lines of one order share its time stamp
    browsing = F.col("event_type").isin(*BROWSING)
    by_session = Window.partitionBy("user_id", "session_id").orderBy("t")
    gaps = (
        in_session.where(browsing)
        .select("user_id", (F.col("t") - F.lag("t").over(by_session)).alias("gap"))
        .where(F.col("gap").isNotNull())
    )
    gap_stats = gaps.groupBy("user_id").agg(
        F.percentile_approx("gap", 0.5).cast("double").alias("median_gap_s")
    )
    sessions = in_session.groupBy("user_id", "session_id").agg(
        F.count(F.when(browsing, 1)).alias("n"),
        (F.max(F.when(browsing, F.col("t"))) - F.min(F.when(browsing, F.col("t")))).alias("span"),
        F.max(F.when(is_type["view"], 1).otherwise(0)).alias("has_view"),
        F.max(F.when(is_type["add_to_cart"] | is_type["purchase"], 1).otherwise(0)).alias(
            "has_cart"
        ),
    )
    session_stats = sessions.groupBy("user_id").agg(
        F.max(
            F.when(F.col("n") >= 10, F.col("n") * 60.0 / F.greatest(F.col("span"), F.lit(1)))
        ).alias("peak_rate"),
        (
            F.sum(F.when((F.col("has_view") == 1) & (F.col("has_cart") == 0), 1).otherwise(0))
            / F.count(F.lit(1))
        ).alias("view_only_share"),
    )
    orders = (
        w.where(is_type["purchase"] & F.col("order_id").isNotNull())
        .groupBy("user_id", "order_id")
        .agg(F.min("t").alias("t"))
    )
    hour = Window.partitionBy("user_id").orderBy("t").rangeBetween(-3599, 0)
    bursts = (
        orders.select("user_id", F.count(F.lit(1)).over(hour).alias("k"))
        .groupBy("user_id")
        .agg(F.max("k").alias("max_orders_1h"))
    )
    reviews = _review_features(history, w)
    switches = _switch_features(history, recent, value)
    features = (
        counts.join(gap_stats, "user_id", "left")
        .join(session_stats, "user_id", "left")
        .join(bursts, "user_id", "left")
        .join(reviews, "user_id", "left")
        .join(switches, "user_id", "left")
        .withColumn("return_rate", F.col("returns") / F.greatest(F.col("purchases"), F.lit(1)))
        .withColumn("views_per_session", F.col("views") / F.greatest(F.col("sessions"), F.lit(1)))
    )
    return features.select(
        "user_id",
        *[F.coalesce(F.col(c), F.lit(0)).cast("long").alias(c) for c in COUNT_FEATURES],
        *[F.coalesce(F.col(c), F.lit(0.0)).cast("double").alias(c) for c in RATE_FEATURES],
    )


def _review_features(history: DataFrame, w: DataFrame) -> DataFrame:
    bought = (
        history.where(F.col("event_type") == "purchase")
        .groupBy("user_id", "item_id")
        .agg(F.min("t").alias("bought_t"))
    )
    reviews = (
        w.where((F.col("event_type") == "review") & F.col("item_id").isNotNull())
        .join(bought, ["user_id", "item_id"], "left")
        .where(F.col("bought_t").isNull() | (F.col("bought_t") > F.col("t")))
        .select("user_id", "item_id", "event_date", "rating")
    )
    extreme = reviews.where(F.col("rating").isin(1, 5))
    rings = extreme.groupBy("item_id", "event_date", "rating").agg(
        F.countDistinct("user_id").alias("ring")
    )
    ring_size = (
        extreme.join(rings, ["item_id", "event_date", "rating"])
        .groupBy("user_id")
        .agg(F.max("ring").alias("ring_size"))
    )
    unbought = reviews.groupBy("user_id").agg(F.count(F.lit(1)).alias("reviews_unpurchased"))
    return unbought.join(ring_size, "user_id", "left")


def _switch_features(history: DataFrame, recent: dt.date, value: Column) -> DataFrame:
    # a source without devices or channels (null) has one pair: never a switch
    sessions = history.where(F.col("session_id").isNotNull()).withColumns(
        {c: F.coalesce(F.col(c), F.lit("?")) for c in ("device", "channel")}
    )
    before = (
        sessions.where(F.col("event_date") < F.lit(recent))
        .select("user_id", "device", "channel")
        .distinct()
    )
    habits = before.select("user_id").distinct()
    late = sessions.where(F.col("event_date") >= F.lit(recent)).join(habits, "user_id")
    new_pairs = late.join(before, ["user_id", "device", "channel"], "left_anti")
    purchases = new_pairs.where(F.col("event_type") == "purchase")
    return purchases.groupBy("user_id").agg(
        F.countDistinct("order_id").alias("new_pair_orders"),
        F.sum(value).alias("new_pair_spend"),
    )


def validate_rules(features: DataFrame, rules: Sequence[Rule]) -> None:
    """Every rule's condition must be a Spark SQL boolean over the features: else ConfigError
    naming the rule, before anything is written."""
    bad = []
    for rule in rules:
        try:
            kind = features.select(F.expr(rule.when).alias("x")).schema["x"].dataType
        except (AnalysisException, ParseException) as exc:
            first = str(exc).strip().splitlines()[0][:200]
            bad.append(f"rule {rule.name}: '{rule.when}' is not valid Spark SQL ({first})")
            continue
        if kind.typeName() != "boolean":
            bad.append(f"rule {rule.name}: '{rule.when}' is {kind.typeName()}, not a condition")
    if bad:
        raise ConfigError("anomalies.users.rules: " + "; ".join(bad))


def with_peers(features: DataFrame, users: DataFrame | None, s: UserSettings) -> DataFrame:
    """``peer`` column: the peer-group key (``peer_by`` attributes as of the snapshot joined
    from ``users``; "all" where the group has fewer than ``min_peers`` users or no users)."""
    if users is None or not s.peer_by:
        return features.withColumn("peer", F.lit("all"))
    attrs = users.select("user_id", *s.peer_by)
    key = F.concat_ws("|", *[F.coalesce(F.col(c).cast("string"), F.lit("?")) for c in s.peer_by])
    out = features.join(attrs, "user_id", "left").withColumn("peer", key).drop(*s.peer_by)
    size = F.count(F.lit(1)).over(Window.partitionBy("peer"))
    return out.withColumn("peer", F.when(size >= s.min_peers, F.col("peer")).otherwise("all"))


def rule_frame(features: DataFrame, s: UserSettings) -> pd.DataFrame:
    """One Spark pass over the (cached) features: ``user_id, peer``, every feature and one
    boolean ``rule:<name>`` per rule, on the driver (one row per active user: fine to a few
    million users; the peer statistics and scores below are computed from it)."""
    rules = [F.coalesce(F.expr(r.when), F.lit(False)).alias(f"rule:{r.name}") for r in s.rules]
    return features.select("user_id", "peer", *FEATURES, *rules).toPandas()


def robust_z(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``z_<column>`` per column: (x - peer median) / scale (module docstring); ``columns``
    of :data:`COUNT_FEATURES` get a scale of at least 1. ``frame`` needs ``peer``."""
    out = pd.DataFrame(index=frame.index)
    groups = frame.groupby("peer", sort=False)
    for c in columns:
        x = frame[c].astype(np.float64)
        median = groups[c].transform("median").astype(np.float64)
        deviation = (x - median).abs()
        mad = deviation.groupby(frame["peer"]).transform("median")
        mean_ad = deviation.groupby(frame["peer"]).transform("mean")
        scale = np.where(
            mad > 0, MAD_SCALE * mad, np.where(mean_ad > 0, MEAN_AD_SCALE * mean_ad, 1.0)
        )
        if c in COUNT_FEATURES:  # one event more is never many SDs: counts move by 1
            scale = np.maximum(scale, 1.0)
        out[f"z_{c}"] = (x - median) / scale
    return out


def _number(name: str, value: Any) -> str:
    """A feature's value in words: counts as integers with thousands separators, rates with
    one decimal."""
    return f"{int(value):,}" if name in COUNT_FEATURES else f"{float(value):,.1f}"


def reason_text(template: str, row: Mapping[str, Any]) -> str:
    """``template`` with each ``{feature}`` replaced by the row's value."""
    return PLACEHOLDER.sub(lambda m: _number(m.group(1), row[m.group(1)]), template)


def score_users(frame: pd.DataFrame, s: UserSettings) -> pd.DataFrame:
    """One row per user and anomaly type with a rule or a robust feature: ``user_id,
    anomaly_type, score, fired (rule names), z, z_feature``; ``frame`` from
    :func:`rule_frame`."""
    columns = sorted({c for fs in s.robust.values() for c in fs})
    z = robust_z(frame, columns)
    parts = []
    for anomaly_type in ANOMALY_TYPES:
        rules = [r for r in s.rules if r.anomaly_type == anomaly_type]
        robust = list(s.robust.get(anomaly_type, ()))
        if not rules and not robust:
            continue
        hits = frame[[f"rule:{r.name}" for r in rules]].to_numpy(dtype=bool)
        names = [r.name for r in rules]
        fired = [[n for n, hit in zip(names, row, strict=True) if hit] for row in hits]
        if robust:
            zs = z[[f"z_{c}" for c in robust]].to_numpy()
            best = zs.argmax(axis=1)
            top_z = zs[np.arange(len(frame)), best]
            top_feature = np.array(robust, dtype=object)[best]
        else:
            top_z = np.zeros(len(frame))
            top_feature = np.full(len(frame), None, dtype=object)
        part = pd.DataFrame(
            {
                "user_id": frame["user_id"].to_numpy(),
                "anomaly_type": anomaly_type,
                "fired": fired,
                "z": top_z,
                "z_feature": top_feature,
            },
            index=frame.index,
        )
        positive = np.maximum(top_z, 0.0)
        n_fired = np.array([len(f) for f in fired])
        part["score"] = np.where(n_fired > 0, 0.5, 0.0) + 0.5 * positive / (positive + s.z_half)
        parts.append(part)
    if not parts:
        raise ConfigError("anomalies.users: no rules and no robust features configured")
    return pd.concat(parts)


def alerts(frame: pd.DataFrame, scores: pd.DataFrame, s: UserSettings) -> pd.DataFrame:
    """The alerted rows (a fired rule or ``z >= z_alert``), ranked per type by score (ties by
    user id), at most ``ceil(budget × scored users)`` per type: ``user_id, anomaly_type,
    score, rank, detector, reasons`` (the fired rules' reasons, then the peer z-score in
    words when it is over ``z_alert``)."""
    cap = max(1, math.ceil(s.budget * len(frame) - 1e-9))
    candidates = scores[(scores["fired"].str.len() > 0) | (scores["z"] >= s.z_alert)]
    candidates = candidates.sort_values(
        ["anomaly_type", "score", "user_id"], ascending=[True, False, True], kind="stable"
    )
    top = candidates.groupby("anomaly_type", sort=False).head(cap).copy()
    top["rank"] = top.groupby("anomaly_type").cumcount() + 1
    templates = {r.name: r.reason for r in s.rules}
    reasons, detectors = [], []
    for index, row in zip(top.index, top.itertuples(), strict=True):
        values = frame.loc[index]
        words = [reason_text(templates[name], values) for name in row.fired]
        if row.z >= s.z_alert:
            words.append(
                f"{row.z_feature} {_number(str(row.z_feature), values[row.z_feature])} is "
                f"{row.z:.1f} robust SDs above its peers ({values['peer']})"
            )
        reasons.append(words)
        detectors.append(",".join(row.fired) if row.fired else f"robust_z:{row.z_feature}")
    top["reasons"], top["detector"] = reasons, detectors
    return top[["user_id", "anomaly_type", "score", "rank", "detector", "reasons"]].reset_index(
        drop=True
    )


def summarise(flagged: pd.DataFrame) -> str:
    """Counts of alerted users per type, for the job's log line."""
    counts = flagged["anomaly_type"].value_counts()
    return ", ".join(f"{t} {int(counts.get(t, 0))}" for t in ANOMALY_TYPES)
