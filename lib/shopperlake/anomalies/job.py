"""``detect_anomalies --as-of D`` → ``gold.feed_anomalies``: the last ``anomalies.feed.days``
days up to D, per source and event type, judged against their seasonal baseline
(:mod:`shopperlake.anomalies.feed`); and ``gold.user_anomalies``: the users whose last
``anomalies.users.days`` days look like abuse (:mod:`shopperlake.anomalies.users`).
Re-running replaces the same days / as-of with the same rows.

``--truth PATH`` (a generated dataset's ``truth/`` folder) evaluates both against the planted
cases (:mod:`shopperlake.anomalies.evaluate`) into ``gold.model_metrics``."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from collections.abc import Sequence

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.utils import AnalysisException

from shopperlake.anomalies import evaluate
from shopperlake.anomalies.feed import STATUSES, FeedSettings, daily_volumes, judge_days
from shopperlake.anomalies.forest import ForestSettings, forest_scores
from shopperlake.anomalies.users import (
    FEATURES,
    UserSettings,
    alerts,
    rule_frame,
    score_users,
    summarise,
    user_features,
    validate_rules,
    with_peers,
)
from shopperlake.core.cli import Job, JobContext
from shopperlake.core.errors import InputError
from shopperlake.core.schemas import FEED_ANOMALIES, USER_ANOMALIES
from shopperlake.profiles.features import attributes_as_of
from shopperlake.training.bootstrap import verdict
from shopperlake.training.metrics import pr_auc
from shopperlake.training.model_metrics import BootstrapSettings, metric_row, write_metrics

log = logging.getLogger(__name__)
FEED = "gold.feed_anomalies"
USERS = "gold.user_anomalies"


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source", action="append", default=None,
        help="bronze.events source to monitor (repeatable; default every source)",
    )  # fmt: skip
    parser.add_argument(
        "--truth", default=None,
        help="truth/ folder of a generated dataset: evaluate against the planted abuse",
    )  # fmt: skip


def body(ctx: JobContext) -> int:
    if ctx.as_of is None:
        raise InputError("detect_anomalies needs --as-of YYYY-MM-DD (the last day judged)")
    settings = FeedSettings.from_config(ctx.cfg)
    user_settings = UserSettings.from_config(ctx.cfg)
    last = ctx.as_of
    first = last - dt.timedelta(days=settings.days - 1)
    events = ctx.lake.read("bronze.events")
    if ctx.args.source:
        events = events.where(F.col("source").isin(*ctx.args.source))
    volumes = daily_volumes(events, last)
    if volumes.empty:
        raise InputError(
            f"no events up to {last} (sources {', '.join(ctx.args.source or ['all'])}): "
            "ingest first"
        )
    features = user_features(events, last, user_settings)
    validate_rules(features, user_settings.rules)  # before anything is written
    judged = judge_days(volumes, first, last, settings)
    judged["run_id"] = ctx.run.run_id
    columns = [f.name for f in FEED_ANOMALIES.fields]
    frame = ctx.spark.createDataFrame(judged[columns], schema=FEED_ANOMALIES)
    where: dict[str, object] = {"event_date": (first, last)}
    if ctx.args.source:
        where["source"] = list(ctx.args.source)
    ctx.lake.overwrite_where(FEED, frame, where)
    counts = judged["status"].value_counts()
    ctx.run.rows_read = int(volumes["n"].sum())
    ctx.run.rows_written = len(judged)
    ctx.run.metrics.update({f"feed.{s}": float(counts.get(s, 0)) for s in STATUSES})
    alerts = judged[~judged["status"].isin(["ok", "no_baseline", "closed"])].sort_values(
        ["event_date", "source", "event_type"]
    )
    print(
        f"feed anomalies {first} .. {last}: {len(judged)} source x type x day rows, "
        + ", ".join(f"{s} {int(counts.get(s, 0))}" for s in STATUSES),
        flush=True,
    )
    for r in alerts.itertuples():
        expected = "-" if r.expected is None or r.expected != r.expected else f"{r.expected:.0f}"
        print(f"  {r.event_date} {r.source:<16} {r.event_type:<16} {r.status:<8} "
              f"observed {r.observed:,}, expected {expected}", flush=True)  # fmt: skip
    n_users = detect_users(ctx, features, user_settings)
    return len(judged) + n_users


def detect_users(ctx: JobContext, features: DataFrame, s: UserSettings) -> int:
    """Score, alert, write ``gold.user_anomalies`` for the as-of day; evaluate with --truth."""
    assert ctx.as_of is not None
    users = None
    if ctx.lake.exists("bronze.users"):
        users = attributes_as_of(ctx.lake.read("bronze.users"), ctx.as_of, "user_id")
    features = with_peers(features, users, s).cache()
    frame = rule_frame(features, s)
    if frame.empty:
        print(f"user anomalies {ctx.as_of}: no user active in the last {s.days} days", flush=True)
        return 0
    scores = score_users(frame, s)
    flagged = alerts(frame, scores, s)
    table = flagged.assign(as_of=ctx.as_of, run_id=ctx.run.run_id)
    columns = [f.name for f in USER_ANOMALIES.fields]
    rows = [tuple(r) for r in table[columns].itertuples(index=False)]
    ctx.lake.overwrite_where(USERS, ctx.spark.createDataFrame(rows, USER_ANOMALIES),
                             {"as_of": ctx.as_of})  # fmt: skip
    ctx.run.metrics.update({"users.scored": float(len(frame)), "users.alerts": float(len(rows))})
    print(f"user anomalies {ctx.as_of}: {len(frame):,} users scored, alerts: "
          f"{summarise(flagged)}", flush=True)  # fmt: skip
    for r in flagged[flagged["rank"] <= 3].itertuples():
        print(f"  {r.anomaly_type:<15} #{r.rank:<3} {r.user_id:<12} score {r.score:.2f} "
              f"[{r.detector}] {'; '.join(r.reasons)}", flush=True)  # fmt: skip
    if ctx.args.truth:
        forest = forest_scores(features, FEATURES, ForestSettings.from_config(ctx.cfg))
        _evaluate(ctx, s, scores, flagged, frame["user_id"], forest.toPandas())
    features.unpersist()
    return len(rows)


def _evaluate(
    ctx: JobContext, s: UserSettings, scores: pd.DataFrame, flagged: pd.DataFrame,
    scored: pd.Series, forest: pd.DataFrame,
) -> None:  # fmt: skip
    root = str(ctx.args.truth).rstrip("/")
    try:
        raw = ctx.spark.read.json(f"{root}/users")
    except AnalysisException as exc:
        raise InputError(
            f"--truth {root}: no planted truth there (expected {root}/users and {root}/feed, "
            "written by `generate --abuse-share`)"
        ) from exc
    if not {"user_id", "anomaly_type"} <= set(raw.columns):
        raise InputError(f"--truth {root}/users lacks user_id / anomaly_type")
    truth = pd.DataFrame(raw.select("user_id", "anomaly_type").toPandas())
    cases = evaluate.user_cases(scores, flagged, scored, truth)
    k = evaluate.budget_k(s.budget, len(scored))
    boot = BootstrapSettings.from_config(ctx.cfg)
    result = evaluate.evaluate_users(cases, boot)
    at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    split = f"planted:{ctx.as_of}"
    out = []
    print(f"against the planted truth ({len(cases):,} users, at most {k} alerts per type, "
          f"precision_at_k: the top {evaluate.K}):", flush=True)  # fmt: skip
    for t, by_metric in result.items():
        cells = ", ".join(f"{m} {by_metric[m]}" for m in evaluate.METRICS)
        print(f"  {t:<15} planted {by_metric['positives']:>4}: {cells}", flush=True)
        for m in evaluate.METRICS:
            ci = by_metric[m]
            out.append(metric_row("anomalies", str(ctx.as_of), "rules+robust_z", split,
                                  f"{t}.{m}", ci.estimate, ctx.run.run_id, at, ci))  # fmt: skip
    print("Isolation Forest (LinkedIn, all features as log1p) vs rules + peer z-scores, PR-AUC:",
          flush=True)  # fmt: skip
    for t, c in evaluate.forest_comparison(cases, forest, boot).items():
        d = c["difference"]
        print(f"  {t:<15} forest {c['isolation_forest']}, rules+robust_z {c['rules+robust_z']}, "
              f"forest - rules {d} {verdict(d)}", flush=True)  # fmt: skip
        # the rules' own per-type PR-AUC is already a row; "any" is new for both
        for algo in ("isolation_forest", "rules+robust_z")[: 2 if t == "any" else 1]:
            ci = c[algo]
            out.append(metric_row("anomalies", str(ctx.as_of), algo, split, f"{t}.pr_auc",
                                  ci.estimate, ctx.run.run_id, at, ci))  # fmt: skip
        out.append(metric_row("anomalies", str(ctx.as_of), "isolation_forest", split,
                              f"{t}.pr_auc", d.estimate, ctx.run.run_id, at, d,
                              reference="rules+robust_z"))  # fmt: skip
    feed_truth = ctx.spark.read.schema("source string, date string, event_type string").json(
        f"{root}/feed"
    )
    judged = ctx.lake.read(FEED).where(F.col("event_date") <= F.lit(ctx.as_of)).toPandas()
    feed = evaluate.feed_cases(judged, feed_truth.toPandas())
    if feed["y"].sum() > 0:
        value = pr_auc(feed["y"].to_numpy(), feed["score"].to_numpy())
        print(f"  {'feed_outage':<15} planted {int(feed['y'].sum()):>4}: pr_auc {value:.4f} "
              f"over {len(feed)} source x type x day rows", flush=True)  # fmt: skip
        out.append(metric_row("anomalies", str(ctx.as_of), "feed_baseline", split,
                              "feed_outage.pr_auc", value, ctx.run.run_id, at))  # fmt: skip
    write_metrics(ctx.lake, out)


DETECT_ANOMALIES = Job(
    name="detect_anomalies",
    description="Judge each source's daily event volumes per type against a same-weekday "
    "baseline with a robust trend (gold.feed_anomalies: ok, low, high, missing, new), and "
    "flag users whose recent behaviour looks like abuse: bots, order bursts, review spam, "
    "return abuse, account switches (gold.user_anomalies: score, rank, detector, reasons).",
    add_args=add_args,
    body=body,
    reads=("bronze.events", "bronze.users"),
    writes=(FEED, USERS, "gold.model_metrics"),
)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return DETECT_ANOMALIES.main(argv, spark)
