"""``report --as-of D``: one self-contained HTML file per as-of date for analysts.

``<report root>/<D>/report.html`` (``report.root``, default ``<lake>/reports``) with every
figure embedded as a PNG data URI and also written beside it (``*.png``). Sections:

- **lake health**: each table's Delta version, rows, files and last write; quarantined rows
  by source, entity and reason; the latest quality-gate result of every check
  (``meta.quality_checks``); the runs of the last days, failures first;
- **segments**: RFM segment sizes (a bar chart) and the learned clusters with their
  descriptions, as of D;
- **churn**: the current model's test figures with 95 % intervals, ROC / cumulative gains /
  reliability plots from its stored test predictions, risk bands as of D;
- **retention**: targets per action tier with the value at stake, and the top targets;
- **recommender**: the current version's holdout metrics and example lists as of D;
- **anomalies**: alerts per type with the top alert's reasons, feed days not ok;
- **forecasts**: series and methods of the latest forecast up to D, the largest series with
  their 80 % / 95 % intervals (a chart), backtest WAPE per method;
- **return risk**: the return model's test figures with intervals, risk bands of open lines.

A section whose tables do not exist yet says which job builds them. Reads only; writes no
table.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import html
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from shopperlake.core.cli import Job, JobContext
from shopperlake.core.config import Config
from shopperlake.core.errors import InputError
from shopperlake.core.lake import Lake
from shopperlake.core.storage import local_path
from shopperlake.training.metrics import plot_curves
from shopperlake.training.registry import Registry

log = logging.getLogger(__name__)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#222;line-height:1.4}
h1{font-size:1.6rem}h2{border-bottom:2px solid #ccd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.88rem}
th,td{border:1px solid #ccd;padding:.25rem .55rem;text-align:left;vertical-align:top}
th{background:#eef}td.num{text-align:right;font-variant-numeric:tabular-nums}
.fail{background:#fdd}.warn{background:#ffefc2}.pass{background:#e3f6e3}.skipped{color:#777}
.missing{color:#777;font-style:italic}figure{display:inline-block;margin:.3rem 1rem .3rem 0}
figure img{max-width:480px;border:1px solid #dde}nav a{margin-right:.8rem}
"""


@dataclass
class Section:
    id: str
    title: str
    parts: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.parts.append(text)

    def html(self) -> str:
        body = "\n".join(self.parts) or '<p class="missing">nothing to show</p>'
        return (
            f'<section id="{self.id}" data-section>\n<h2>{esc(self.title)}</h2>\n{body}\n</section>'
        )


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], classes: Sequence[str] = ()
) -> str:
    out = ["<table>", "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>"]
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        cells = "".join(
            f'<td class="num">{esc(fmt(v))}</td>' if numeric(v) else f"<td>{esc(fmt(v))}</td>"
            for v in row
        )
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def missing(what: str, job: str) -> str:
    return f'<p class="missing">{esc(what)} does not exist yet: run <code>{esc(job)}</code>.</p>'


class Figures:
    """PNG files in the report folder, embedded in the page as data URIs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.written: list[Path] = []

    def embed(self, path: Path, caption: str) -> str:
        self.written.append(path)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}" '
            f'data-file="{esc(path.name)}"><figcaption>{esc(caption)}</figcaption></figure>'
        )

    def new(self) -> tuple[Any, Any]:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.4, 4), dpi=100)
        FigureCanvasAgg(fig)
        return fig, fig.add_subplot()

    def save(self, fig: Any, name: str, caption: str) -> str:
        path = self.folder / name
        fig.savefig(path, format="png", bbox_inches="tight")
        return self.embed(path, caption)


def latest_on_or_before(df: DataFrame, column: str, day: dt.date) -> Any:
    row = df.where(F.col(column) <= F.lit(day)).agg(F.max(column)).first()
    return None if row is None else row[0]


# -- sections ------------------------------------------------------------------------------------


def lake_health(lake: Lake, day: dt.date) -> Section:
    s = Section("lake-health", "Lake health")
    rows = []
    for name in lake.tables():
        if not lake.exists(name):
            continue
        files, size = lake.snapshot_files(name)
        last = lake.history(name, 1).select("timestamp", "operation").first()
        rows.append(
            (
                name,
                lake.version(name),
                lake.read(name).count(),
                files,
                round(size / 2**20, 1),
                None if last is None else str(last["timestamp"])[:19],
                None if last is None else last["operation"],
            )
        )
    if not rows:
        s.add(missing("The lake", "./submit.sh ingest ..."))
        return s
    s.add("<h3>Tables</h3>")
    s.add(
        table(["table", "version", "rows", "files", "MiB", "last write (UTC)", "operation"], rows)
    )
    s.add("<h3>Quarantine by reason</h3>")
    if lake.exists("bronze.quarantine"):
        q = (
            lake.read("bronze.quarantine")
            .groupBy("source", "entity", "reason")
            .count()
            .orderBy("source", "entity", F.desc("count"))
            .collect()
        )
        s.add(
            table(["source", "entity", "reason", "rows"], [tuple(r) for r in q])
            if q
            else "<p>No quarantined rows.</p>"
        )
    else:
        s.add("<p>No quarantined rows.</p>")
    s.add("<h3>Quality gates (latest result of each check)</h3>")
    if lake.exists("meta.quality_checks"):
        checks = lake.read("meta.quality_checks")
        latest = Window.partitionBy("table_name", "check").orderBy(F.desc("checked_at"))
        got = (
            checks.withColumn("n", F.row_number().over(latest))
            .where("n = 1")
            .orderBy(F.expr("status = 'fail'").desc(), "table_name", "check")
            .collect()
        )
        s.add(
            table(
                [
                    "table",
                    "check",
                    "level",
                    "status",
                    "observed",
                    "expected",
                    "scope",
                    "job",
                    "checked (UTC)",
                ],
                [
                    (
                        r["table_name"],
                        r["check"],
                        r["level"],
                        r["status"],
                        r["observed"],
                        r["expected"],
                        r["scope"],
                        r["job"],
                        str(r["checked_at"])[:19],
                    )
                    for r in got
                ],
                [
                    ("fail" if r["level"] == "error" else "warn")
                    if r["status"] == "fail"
                    else r["status"]
                    for r in got
                ],
            )
        )
    else:
        s.add('<p class="missing">No quality-gate results yet (meta.quality_checks).</p>')
    s.add("<h3>Job runs (the last 40; failures first)</h3>")
    if lake.exists("meta.runs"):
        runs = (
            lake.read("meta.runs")
            .orderBy(F.desc("started_at"))
            .limit(40)
            .orderBy(F.expr("status = 'failed'").desc(), F.desc("started_at"))
            .collect()
        )
        s.add(
            table(
                [
                    "job",
                    "as of",
                    "status",
                    "started (UTC)",
                    "seconds",
                    "rows written",
                    "quality warnings",
                    "error",
                ],
                [
                    (
                        r["job"],
                        r["as_of"],
                        r["status"],
                        str(r["started_at"])[:19],
                        round((r["finished_at"] - r["started_at"]).total_seconds(), 1)
                        if r["finished_at"]
                        else None,
                        r["rows_written"],
                        int((r["metrics"] or {}).get("quality.warnings", 0)),
                        r["error"],
                    )
                    for r in runs
                ],
                ["fail" if r["status"] == "failed" else "" for r in runs],
            )
        )
    return s


def segments(lake: Lake, day: dt.date, figs: Figures) -> Section:
    s = Section("segments", "Segments")
    if not lake.exists("gold.segment_summary"):
        s.add(missing("gold.segment_summary", "./submit.sh build_segments --as-of D"))
        return s
    summ = lake.read("gold.segment_summary")
    snap = latest_on_or_before(summ, "as_of_date", day)
    if snap is None:
        s.add(
            missing(
                f"A segment snapshot on or before {day}", "./submit.sh build_segments --as-of D"
            )
        )
        return s
    rows = pd.DataFrame(summ.where(F.col("as_of_date") == F.lit(snap)).toPandas())
    s.add(f"<p>Snapshot as of {esc(snap)}.</p>")
    rfm = rows[rows["kind"] == "rfm"].sort_values("users", ascending=False)
    clusters = rows[rows["kind"] != "rfm"].sort_values("cluster_id")
    fig, ax = figs.new()
    ax.barh(list(rfm["segment"])[::-1], list(rfm["users"])[::-1], color="#4a6fa5")
    ax.set(title=f"RFM segments as of {snap}", xlabel="users")
    s.add(figs.save(fig, "segments.png", "users per RFM segment"))
    cols = ["users", "share", "median_recency_days", "median_frequency", "median_monetary_total"]
    s.add("<h3>RFM segments</h3>")
    s.add(
        table(
            ["segment", *cols, "description"],
            [(r["segment"], *[r[c] for c in cols], r["description"]) for _, r in rfm.iterrows()],
        )
    )
    s.add("<h3>Learned clusters</h3>")
    s.add(
        table(
            ["cluster", *cols, "description"],
            [
                (r["cluster_id"], *[r[c] for c in cols], r["description"])
                for _, r in clusters.iterrows()
            ],
        )
    )
    return s


def metrics_table(lake: Lake, model: str, version: str, split: str, metrics: Sequence[str]) -> str:
    m = (
        lake.read("gold.model_metrics")
        .where(
            (F.col("model") == model) & (F.col("version") == version) & (F.col("split") == split)
        )
        .where(F.col("reference").isNull())
        .collect()
    )
    cells = {(r["algorithm"], r["metric"]): r for r in m}
    algos = sorted({a for a, _ in cells}, key=lambda a: (a == "constant", a))
    present = [x for x in metrics if any((a, x) in cells for a in algos)]

    def cell(algo: str, metric: str) -> str:
        r = cells.get((algo, metric))
        if r is None:
            return "-"
        if r["ci_low"] is None:
            return f"{r['value']:.4f}"
        return f"{r['value']:.4f} [{r['ci_low']:.4f}, {r['ci_high']:.4f}]"

    if not algos:
        return f'<p class="missing">No {esc(split)} figures for {esc(model)} {esc(version)}.</p>'
    return table(["algorithm", *present], [(a, *[cell(a, x) for x in present]) for a in algos])


def churn(lake: Lake, registry: Registry, day: dt.date, figs: Figures) -> Section:
    s = Section("churn", "Churn")
    version = registry.current("churn")
    if version is None or not lake.exists("gold.model_metrics"):
        s.add(missing("A churn model", "./submit.sh train --model churn --as-of D"))
    else:
        s.add(
            f"<p>Current model {esc(version)}: test split (out-of-time), value [95 % interval].</p>"
        )
        s.add(
            metrics_table(
                lake, "churn", version, "test", ["roc_auc", "pr_auc", "brier", "ece", "log_loss"]
            )
        )
        preds = registry.get("churn", version).path / "predictions_test.csv"
        if preds.is_file():
            p = pd.read_csv(preds)
            algos = [c for c in ("dnn", "gbt", "logreg") if c in p.columns]
            paths = plot_curves(
                p["label"].to_numpy(), {a: p[a].to_numpy() for a in algos}, figs.folder
            )
            names = {
                "roc.png": "ROC",
                "lift.png": "cumulative gains (lift)",
                "calibration.png": "reliability",
            }
            for path in paths:
                if path.name in names:
                    target = path.with_name(f"churn_{path.name}")
                    path.replace(target)
                    s.add(figs.embed(target, f"churn, test split: {names[path.name]}"))
                else:
                    path.unlink()
    if lake.exists("gold.churn_scores"):
        sc = lake.read("gold.churn_scores").where(F.col("as_of_date") == F.lit(day))
        bands = (
            sc.groupBy("population", "risk_band")
            .agg(F.count(F.lit(1)).alias("users"), F.avg("score").alias("mean_score"))
            .orderBy("population", "risk_band")
            .collect()
        )
        s.add(f"<h3>Risk bands as of {esc(day)}</h3>")
        s.add(
            table(["population", "risk band", "users", "mean score"], [tuple(r) for r in bands])
            if bands
            else f'<p class="missing">No churn scores as of {esc(day)}: run '
            f"<code>./submit.sh score --model churn --as-of {esc(day)}</code>.</p>"
        )
    return s


def retention(lake: Lake, day: dt.date) -> Section:
    s = Section("retention", "Retention targets")
    if not lake.exists("gold.retention_targets"):
        s.add(missing("gold.retention_targets", "./submit.sh score --model churn --as-of D"))
        return s
    t = lake.read("gold.retention_targets").where(F.col("as_of_date") == F.lit(day))
    tiers = (
        t.groupBy("action")
        .agg(
            F.count(F.lit(1)).alias("users"),
            F.sum("value_at_stake").alias("value_at_stake"),
            F.avg("score").alias("mean_churn_probability"),
        )
        .orderBy(F.desc("value_at_stake"))
        .collect()
    )
    if not tiers:
        s.add(f'<p class="missing">No targets as of {esc(day)}.</p>')
        return s
    s.add(
        table(
            ["action tier", "users", "value at stake", "mean churn probability"],
            [tuple(r) for r in tiers],
        )
    )
    top = t.orderBy(F.desc("value_at_stake")).limit(10).collect()
    s.add("<h3>Top 10 by value at stake</h3>")
    s.add(
        table(
            ["user", "action", "churn probability", "customer value", "value at stake", "reasons"],
            [
                (
                    r["user_id"],
                    r["action"],
                    r["score"],
                    r["customer_value"],
                    r["value_at_stake"],
                    r["top_reasons"],
                )
                for r in top
            ],
        )
    )
    return s


def recommender(lake: Lake, registry: Registry, day: dt.date) -> Section:
    s = Section("recommender", "Recommendations")
    version = registry.current("recommender")
    if version is None or not lake.exists("gold.model_metrics"):
        s.add(missing("A recommender version", "./submit.sh train_recommender --as-of D"))
    else:
        s.add(f"<p>Current version {esc(version)}, time holdout.</p>")
        s.add(
            metrics_table(
                lake,
                "recommender",
                version,
                "holdout",
                ["precision@10", "recall@10", "ndcg@10", "map@10", "hit_rate@10", "coverage@10"],
            )
        )
    if lake.exists("gold.recommendations"):
        recs = lake.read("gold.recommendations").where(F.col("as_of_date") == F.lit(day))
        users = [
            r[0] for r in recs.select("user_id").distinct().orderBy("user_id").limit(5).collect()
        ]
        if users:
            s.add(f"<h3>Example lists as of {esc(day)}</h3>")
            lists = recs.where(F.col("user_id").isin(users)).orderBy("user_id", "rank").collect()
            s.add(
                table(
                    ["user", "top 10 (item, source)"],
                    [
                        (
                            u,
                            ", ".join(
                                [
                                    f"{r['item_id']} ({r['source']})"
                                    for r in lists
                                    if r["user_id"] == u
                                ][:10]
                            ),
                        )
                        for u in users
                    ],
                )
            )
    return s


def sequences(lake: Lake, registry: Registry, day: dt.date) -> Section:
    """SASRec's leave-one-out figures (with the paired differences to the baselines) and
    example next-item lists of the day."""
    s = Section("sequences", "Next items (SASRec)")
    version = registry.current("sasrec")
    if version is None or not lake.exists("gold.model_metrics"):
        s.add(missing("A SASRec version", "./submit.sh train --model sasrec --as-of D"))
    else:
        s.add(f"<p>Current version {esc(version)}, leave-one-out, full ranking, seen items "
              "removed; 95 % bootstrap intervals over users.</p>")  # fmt: skip
        s.add(metrics_table(lake, "sasrec", version, "loo_test", ["hr@10", "ndcg@10"]))
        diffs = (
            lake.read("gold.model_metrics")
            .where((F.col("model") == "sasrec") & (F.col("version") == version))
            .where(F.col("reference").isNotNull())
            .orderBy("reference", "metric")
            .collect()
        )
        if diffs:
            s.add(
                table(
                    ["SASRec minus", "metric", "difference [paired 95 %]", "verdict"],
                    [
                        (r["reference"], r["metric"],
                         f"{r['value']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]",
                         "beats" if r["ci_low"] > 0 else "worse" if r["ci_high"] < 0 else "tie")
                        for r in diffs
                        if r["ci_low"] is not None
                    ],
                )
            )  # fmt: skip
    table_name = "gold.next_item_recommendations"
    if lake.exists(table_name):
        recs = lake.read(table_name).where(F.col("as_of_date") == F.lit(day))
        users = [
            r[0] for r in recs.select("user_id").distinct().orderBy("user_id").limit(5).collect()
        ]
        if users:
            lists = recs.where(F.col("user_id").isin(users)).orderBy("user_id", "rank").collect()
            s.add(f"<h3>Example next items as of {esc(day)}</h3>")
            s.add(
                table(
                    ["user", "top 10 next items"],
                    [
                        (u, ", ".join([r["item_id"] for r in lists if r["user_id"] == u][:10]))
                        for u in users
                    ],
                )
            )
    return s


def anomalies(lake: Lake, day: dt.date) -> Section:
    s = Section("anomalies", "Anomalies")
    if not lake.exists("gold.user_anomalies") and not lake.exists("gold.feed_anomalies"):
        s.add(missing("gold.user_anomalies", "./submit.sh detect_anomalies --as-of D"))
        return s
    if lake.exists("gold.user_anomalies"):
        ua = lake.read("gold.user_anomalies")
        snap = latest_on_or_before(ua, "as_of", day)
        if snap is not None:
            rows = ua.where(F.col("as_of") == F.lit(snap)).orderBy("anomaly_type", "rank").collect()
            s.add(f"<h3>User alerts as of {esc(snap)}</h3>")
            by_type: dict[str, list[Any]] = {}
            for r in rows:
                by_type.setdefault(r["anomaly_type"], []).append(r)
            s.add(
                table(
                    ["type", "alerts", "top user", "detector", "score", "reasons"],
                    [
                        (
                            t,
                            len(rs),
                            rs[0]["user_id"],
                            rs[0]["detector"],
                            rs[0]["score"],
                            rs[0]["reasons"],
                        )
                        for t, rs in by_type.items()
                    ],
                )
            )
    if lake.exists("gold.feed_anomalies"):
        feed = lake.read("gold.feed_anomalies").where(
            (F.col("status") != "ok") & (F.col("event_date") <= F.lit(day))
        )
        bad = feed.orderBy(F.desc("event_date"), "source", "event_type").limit(50).collect()
        s.add("<h3>Feed days not ok (latest 50)</h3>")
        s.add(
            table(
                ["day", "source", "event type", "status", "observed", "expected", "interval"],
                [
                    (
                        r["event_date"],
                        r["source"],
                        r["event_type"],
                        r["status"],
                        r["observed"],
                        r["expected"],
                        "-" if r["lo"] is None else f"{r['lo']:,.0f} .. {r['hi']:,.0f}",
                    )
                    for r in bad
                ],
                ["fail" if r["status"] == "missing" else "warn" for r in bad],
            )
            if bad
            else "<p>Every judged feed day is ok.</p>"
        )
    return s


def forecasts(lake: Lake, day: dt.date, figs: Figures) -> Section:
    s = Section("forecasts", "Demand forecasts")
    if not lake.exists("gold.demand_forecasts"):
        s.add(missing("gold.demand_forecasts", "./submit.sh forecast --as-of D --level category"))
        return s
    fc = lake.read("gold.demand_forecasts")
    snap = latest_on_or_before(fc, "as_of_date", day)
    if snap is None:
        s.add(f'<p class="missing">No forecast made on or before {esc(day)}.</p>')
        return s
    now = fc.where(F.col("as_of_date") == F.lit(snap))
    s.add(f"<p>Forecast made as of {esc(snap)}.</p>")
    methods = (
        now.groupBy("level", "method")
        .agg(F.countDistinct("series_id").alias("series"))
        .orderBy("level", F.desc("series"))
        .collect()
    )
    s.add(table(["level", "chosen method", "series"], [tuple(r) for r in methods]))
    top = (
        now.groupBy("level", "series_id")
        .agg(F.sum("forecast").alias("units"))
        .orderBy(F.desc("units"))
        .limit(3)
        .collect()
    )
    for i, t in enumerate(top):
        one = now.where((F.col("level") == t["level"]) & (F.col("series_id") == t["series_id"]))
        pdf = pd.DataFrame(one.orderBy("target_date").toPandas())
        fig, ax = figs.new()
        x = pd.to_datetime(pdf["target_date"])
        ax.fill_between(x, pdf["lo_95"], pdf["hi_95"], alpha=0.2, color="#4a6fa5", label="95 %")
        ax.fill_between(x, pdf["lo_80"], pdf["hi_80"], alpha=0.35, color="#4a6fa5", label="80 %")
        ax.plot(x, pdf["forecast"], color="#1f3b66", label=f"forecast ({pdf['method'].iloc[0]})")
        ax.set(title=f"{t['level']} {t['series_id']}", ylabel="units per day")
        ax.legend(fontsize="small")
        fig.autofmt_xdate()
        s.add(
            figs.save(
                fig, f"forecast_{i + 1}.png", f"{t['level']} {t['series_id']}: forecast from {snap}"
            )
        )
    if lake.exists("gold.forecast_backtests"):
        bt = lake.read("gold.forecast_backtests")
        pooled = (
            bt.groupBy("level", "method")
            .agg(
                (F.sum("abs_error") / F.sum("demand")).alias("pooled_wape"),
                F.avg("mase").alias("mean_mase"),
                F.avg("coverage_80").alias("coverage_80"),
                F.countDistinct("series_id").alias("series"),
            )
            .orderBy("level", "pooled_wape")
            .collect()
        )
        s.add("<h3>Backtests (every origin; pooled WAPE = total |error| / total demand)</h3>")
        s.add(
            table(
                ["level", "method", "pooled WAPE", "mean MASE", "80 % coverage", "series"],
                [tuple(r) for r in pooled],
            )
        )
    return s


def returns(lake: Lake, registry: Registry, day: dt.date) -> Section:
    s = Section("returns", "Return risk")
    version = registry.current("returns")
    if version is None or not lake.exists("gold.model_metrics"):
        s.add(missing("A return model", "./submit.sh train --model returns --as-of D"))
    else:
        s.add(
            f"<p>Current model {esc(version)}: test split, "
            "value [95 % customer-level interval].</p>"
        )
        s.add(
            metrics_table(
                lake,
                "returns",
                version,
                "test",
                ["roc_auc", "pr_auc", "precision_top5pct", "order_roc_auc"],
            )
        )
    if lake.exists("gold.return_risk"):
        risk = lake.read("gold.return_risk")
        snap = latest_on_or_before(risk, "as_of_date", day)
        if snap is not None:
            now = risk.where(F.col("as_of_date") == F.lit(snap))
            bands = (
                now.groupBy("risk_band")
                .agg(
                    F.count(F.lit(1)).alias("lines"),
                    F.countDistinct("order_id").alias("orders"),
                    F.avg("probability").alias("mean_probability"),
                )
                .orderBy("risk_band")
                .collect()
            )
            s.add(f"<h3>Open order lines as of {esc(snap)}</h3>")
            s.add(
                table(
                    ["risk band", "lines", "orders", "mean probability"], [tuple(r) for r in bands]
                )
            )
            top = now.orderBy(F.desc("probability")).limit(10).collect()
            s.add(
                table(
                    ["order", "item", "user", "probability", "reasons (the DNN's)"],
                    [
                        (
                            r["order_id"],
                            r["item_id"],
                            r["user_id"],
                            r["probability"],
                            r["top_reasons"],
                        )
                        for r in top
                    ],
                )
            )
    return s


# -- the job -------------------------------------------------------------------------------------


def report_folder(cfg: Config, lake_root: str, day: dt.date, output: str | None) -> Path:
    root = output or cfg.get("report.root") or f"{lake_root.rstrip('/')}/reports"
    return local_path(str(root), "report folder") / day.isoformat()


def build(lake: Lake, registry: Registry, day: dt.date, folder: Path) -> tuple[Path, list[Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    figs = Figures(folder)
    sections = [
        lake_health(lake, day),
        segments(lake, day, figs),
        churn(lake, registry, day, figs),
        retention(lake, day),
        recommender(lake, registry, day),
        sequences(lake, registry, day),
        anomalies(lake, day),
        forecasts(lake, day, figs),
        returns(lake, registry, day),
    ]
    nav = " ".join(f'<a href="#{x.id}">{esc(x.title)}</a>' for x in sections)
    made = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>ShopperLake report as of {day}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>ShopperLake report as of {day}</h1>\n"
        f"<p>Lake <code>{esc(lake.root)}</code>, made {made}.</p>\n<nav>{nav}</nav>\n"
        + "\n".join(x.html() for x in sections)
        + "\n</body>\n</html>\n"
    )
    out = folder / "report.html"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out, figs.written


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        default=None,
        help="report root folder (default report.root, else <lake>/reports)",
    )


def body(ctx: JobContext) -> None:
    if ctx.as_of is None:
        raise InputError("report needs --as-of YYYY-MM-DD")
    folder = report_folder(ctx.cfg, ctx.lake.root, ctx.as_of, ctx.args.output)
    registry = Registry.from_config(ctx.cfg, ctx.lake.root)
    path, pngs = build(ctx.lake, registry, ctx.as_of, folder)
    ctx.run.metrics["report.images"] = float(len(pngs))
    print(f"report: {path} ({len(pngs)} images)", flush=True)


REPORT = Job(
    name="report",
    description="Write one self-contained HTML report (and its PNGs) for an as-of date: lake "
    "health and quality gates, segments, churn, retention targets, recommendations, "
    "anomalies, demand forecasts and return risk.",
    add_args=add_args,
    body=body,
    reads=("bronze.*", "gold.*", "meta.*"),
    writes=(),
)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return REPORT.main(argv, spark)
