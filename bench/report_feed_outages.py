"""Feed monitoring against many planted outages on the real sources' daily volumes.

Ingests CDNOW (1997-98), UCI Online Retail II (2009-11) and The Complete Journey (2017; both
from ``make data``) into one lake and takes the events per source, event type and day of
``bronze.events``. Every series with a median of at least ``--min-median`` events a day is
judged from its eleventh week on (the detector needs three same weekdays of baseline; ten
weeks let it see eight). On a seeded random ``--share`` of those judged days one kind of
outage is planted: the whole day lost (0 events), 70 % of it lost, or the day sent twice.
Every judged day is then judged by :func:`shopperlake.anomalies.feed.judge_days` on the
planted volumes, on its own history only, earlier planted days included, as a live feed is.

The sources' closing calendars (``CALENDARS`` below; ``--no-calendar`` leaves them out) are
``anomalies.feed.closed_days``: those days are ``closed``, never planted or alerted.

Per kind: PR-AUC of two deviation scores of the planted days against every unplanted day,
both clipped at 0: the ratio (loss: ``1 - observed / expected``; duplicate: ``observed /
expected - 1``) and the gap in units of the monitor's noise (``(expected - observed) /
noise`` and its negative); recall (status ``missing`` or ``low`` for losses, ``high`` for
duplicates) and the false-positive rate (an alert: ``missing``, ``low``, ``high`` or ``new``
on an unplanted day); bootstrap intervals over days. Unplanted days are real days: some are
real anomalies, so the false-positive rate is an upper bound.

    .venv/bin/python bench/report_feed_outages.py [--share 0.05] [--seed 7] [--reuse]
        [--no-calendar] [--set anomalies.feed.noise_days=0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work" / "feed_outages"
SOURCES = {"cdnow": [], "online_retail": ["--as-of", "2011-12-09"],
           "completejourney": ["--as-of", "2017-12-31"]}  # fmt: skip
KINDS = {"lost": 0.0, "lost_70pct": 0.3, "duplicated": 2.0}  # observed = factor x real
WARMUP_DAYS = 70
# The sources' closing calendars (anomalies.feed.closed_days), known before any judged day:
# Online Retail II (a UK wholesaler): the bank holidays of England and Wales 2009-2011 as
# gov.uk lists them, Easter Sunday (large shops close by the Sunday Trading Act) and the
# firm's Christmas break 24 Dec - 3 Jan, the same in its first December (2009, before the
# first judged day) as in 2010. The Complete Journey (US grocery stores): Christmas Day.
UK_BANK_HOLIDAYS = [
    "2009-12-25", "2009-12-28", "2010-01-01", "2010-04-02", "2010-04-05", "2010-05-03",
    "2010-05-31", "2010-08-30", "2010-12-27", "2010-12-28", "2011-01-03", "2011-04-22",
    "2011-04-25", "2011-04-29", "2011-05-02", "2011-05-30", "2011-08-29", "2011-12-26",
    "2011-12-27",
]  # fmt: skip
CALENDARS = {
    "online_retail": [*UK_BANK_HOLIDAYS, "2010-04-04", "2011-04-24",
                      *(f"12-{d}" for d in range(24, 32)), "01-01", "01-02", "01-03"],
    "completejourney": ["12-25"],
}  # fmt: skip


def plant(
    volumes: pd.DataFrame, share: float, min_median: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(planted volumes, judged cells: source, event_type, event_date, kind or None).

    ``volumes``: source, event_type, event_date, n (days without events absent)."""
    rng = np.random.default_rng(seed)
    out, cells = [], []
    for (source, event_type), rows in volumes.groupby(["source", "event_type"], sort=True):
        days = pd.date_range(volumes.loc[volumes["source"] == source, "event_date"].min(),
                             rows["event_date"].max(), freq="D")  # fmt: skip
        series = rows.set_index("event_date")["n"].reindex(days, fill_value=0).astype(float)
        if series.median() < min_median or len(days) <= WARMUP_DAYS:
            continue
        judged = days[WARMUP_DAYS:]
        # only days with events can lose or repeat them (Online Retail II sends nothing on
        # Saturdays)
        chosen = (rng.random(len(judged)) < share) & (series[judged].to_numpy() > 0)
        kinds = rng.choice(list(KINDS), size=len(judged))
        kind = pd.Series(np.where(chosen, kinds, None), index=judged, dtype=object)
        for day, k in kind.dropna().items():
            series[day] = np.floor(series[day] * KINDS[str(k)])
        out.append(pd.DataFrame({"source": source, "event_type": event_type,
                                 "event_date": days.date, "n": series.to_numpy()}))  # fmt: skip
        cells.append(pd.DataFrame({"source": source, "event_type": event_type,
                                   "event_date": judged.date,
                                   "kind": kind.to_numpy()}))  # fmt: skip
    return pd.concat(out, ignore_index=True), pd.concat(cells, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--share", type=float, default=0.05)
    parser.add_argument("--min-median", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="keep the lake of an earlier run")
    parser.add_argument(
        "--no-calendar", action="store_true", help="judge without the closing calendars"
    )
    parser.add_argument(
        "--set", action="append", default=[], help="config override, e.g. anomalies.feed.z=4"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("PYSPARK_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    from shopperlake.anomalies.feed import FeedSettings, daily_volumes, judge_days
    from shopperlake.core.config import load_config
    from shopperlake.core.lake import Lake
    from shopperlake.core.session import build_session
    from shopperlake.jobs import run
    from shopperlake.training.bootstrap import interval, mean_stat, metric_stat
    from shopperlake.training.metrics import pr_auc
    from shopperlake.training.model_metrics import BootstrapSettings

    calendars = {} if args.no_calendar else CALENDARS
    cfg = load_config(
        "local",
        ["spark.conf.spark.ui.enabled=false", f"anomalies.feed.closed_days={calendars}",
         *args.set],
    )  # fmt: skip
    spark = build_session(cfg, "report-feed-outages")
    started = time.monotonic()
    lake_dir = WORK / "lake"
    if not args.reuse:
        shutil.rmtree(WORK, ignore_errors=True)
        for source, extra in SOURCES.items():
            argv_ = ["--lake", str(lake_dir), "--log-level", "WARNING", "--source", source]
            assert run("ingest", [*argv_, *extra], spark) == 0, source
    events = Lake.from_config(spark, cfg, str(lake_dir)).read("bronze.events")
    volumes = daily_volumes(events, dt.date(2100, 1, 1))
    volumes["event_date"] = pd.to_datetime(volumes["event_date"])
    spark.stop()
    planted, cells = plant(volumes, args.share, args.min_median, args.seed)
    settings = FeedSettings.from_config(cfg)
    judged_parts = []
    for (source, event_type), rows in planted.groupby(["source", "event_type"]):
        own = cells[(cells["source"] == source) & (cells["event_type"] == event_type)]
        judged_parts.append(
            judge_days(rows, own["event_date"].min(), own["event_date"].max(), settings)
        )
    judged = pd.concat(judged_parts, ignore_index=True).merge(
        cells, on=["source", "event_type", "event_date"], how="inner", validate="one_to_one"
    )
    expected = pd.to_numeric(judged["expected"], errors="coerce").fillna(0.0).to_numpy()
    ratio = np.where(expected > 0, judged["observed"].to_numpy(float) / np.maximum(expected, 1e-9),
                     1.0)  # fmt: skip
    # the interval's upper half-width / z: the noise the monitor expects on that series and day
    hi = pd.to_numeric(judged["hi"], errors="coerce").to_numpy()
    sigma = np.where(np.isfinite(hi) & (hi > expected), (hi - expected) / settings.z, np.inf)
    gap = (expected - judged["observed"].to_numpy(float)) / sigma
    judged["loss_ratio"] = np.clip(1.0 - ratio, 0.0, 1.0)
    judged["dup_ratio"] = np.clip(ratio - 1.0, 0.0, None)
    judged["loss_z"] = np.clip(np.nan_to_num(gap), 0.0, None)
    judged["dup_z"] = np.clip(np.nan_to_num(-gap), 0.0, None)
    judged["alert"] = judged["status"].isin(["missing", "low", "high", "new"])
    boot = BootstrapSettings.from_config(cfg)
    opts = {"n_resamples": boot.resamples, "seed": boot.seed, "level": boot.level}
    normal = judged[judged["kind"].isna()]
    print("\nseries judged (median events/day, days judged, planted days, closed days):")
    for (source, event_type), rows in judged.groupby(["source", "event_type"]):
        median = planted[(planted["source"] == source) & (planted["event_type"] == event_type)]
        print(f"  {source:<16} {event_type:<10} {median['n'].median():>8.0f} "
              f"{len(rows):>6} {int(rows['kind'].notna().sum()):>6} "
              f"{int((rows['status'] == 'closed').sum()):>6}")  # fmt: skip
    fp = normal["alert"].to_numpy(dtype=float)
    print(f"\nunplanted days: {len(normal):,}; alerted (false-positive rate, upper bound): "
          f"{interval(mean_stat(fp), len(fp), **opts)}")  # fmt: skip
    flagged = normal[normal["alert"]]
    print("  alerted unplanted days: "
          + ", ".join(f"{r.source}/{r.event_type} {r.event_date} {r.status} "
                      f"({r.observed} vs {float(r.expected):.0f})"
                      for r in flagged.head(40).itertuples()))  # fmt: skip
    print("\nkind | planted days | PR-AUC ratio [95%] | PR-AUC z [95%] | recall [95%]")
    for kind in KINDS:
        rows = judged[judged["kind"].isna() | (judged["kind"] == kind)]
        y = rows["kind"].notna().to_numpy(dtype=int)
        prefix = "dup" if kind == "duplicated" else "loss"
        caught = ("high",) if kind == "duplicated" else ("missing", "low")
        hit = rows.loc[rows["kind"] == kind, "status"].isin(caught).to_numpy(dtype=float)
        aucs = [interval(metric_stat(pr_auc, y, rows[f"{prefix}_{score}"].to_numpy()), len(y),
                         **opts) for score in ("ratio", "z")]  # fmt: skip
        rec = interval(mean_stat(hit), len(hit), **opts)
        print(f"{kind} | {int(y.sum())} | {aucs[0]} | {aucs[1]} | {rec}")
    print("\nper source: kind | planted | PR-AUC ratio / z | recall; unplanted days alerted")
    for source, by_source in judged.groupby("source"):
        clean = by_source[by_source["kind"].isna()]
        cells = []
        for kind in KINDS:
            rows = by_source[by_source["kind"].isna() | (by_source["kind"] == kind)]
            y = rows["kind"].notna().to_numpy(dtype=int)
            if y.sum() == 0:
                continue
            prefix = "dup" if kind == "duplicated" else "loss"
            caught = ("high",) if kind == "duplicated" else ("missing", "low")
            hit = rows.loc[rows["kind"] == kind, "status"].isin(caught).mean()
            by_ratio = pr_auc(y, rows[f"{prefix}_ratio"].to_numpy())
            by_z = pr_auc(y, rows[f"{prefix}_z"].to_numpy())
            cells.append(f"{kind} {int(y.sum())} {by_ratio:.3f} / {by_z:.3f} {hit:.2f}")
        print(f"  {source:<16} " + "; ".join(cells) + f"; alerted {clean['alert'].mean():.3f} "
              f"of {len(clean)}")  # fmt: skip
    print(f"\n{time.monotonic() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
