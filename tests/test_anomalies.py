"""Feed monitoring: the baseline and its interval worked out by hand, and a planted feed (an
outage day, a drop, a spike, a new event type) ingested and judged end to end."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shopperlake.anomalies.feed import FeedSettings, judge, judge_days, relative_noise
from shopperlake.core.config import load_config
from shopperlake.core.errors import ConfigError
from shopperlake.core.lake import Lake
from shopperlake.jobs import run
from tests.conftest import job_args

S = FeedSettings()  # z 3, min_weeks 3, min_expected 5


def test_a_linear_trend_is_followed_not_flagged() -> None:
    # the same weekday grew by 7 a week: the Theil-Sen line reads 10 + 7 x 8 = 66 next week;
    # a plain median of the 8 weeks (34.5) would call 66 "high"
    got = judge(np.array([10, 17, 24, 31, 38, 45, 52, 59.0]), 66.0, True, S)
    assert got.expected == pytest.approx(66.0)
    sigma = math.sqrt(66.0)  # no spread around the line: Poisson noise
    assert (got.lo, got.hi) == (pytest.approx(66 - 3 * sigma), pytest.approx(66 + 3 * sigma))
    assert got.status == "ok" and got.baseline_days == 8


def test_an_earlier_outage_does_not_drag_the_baseline_down() -> None:
    history = np.array([100, 100, 0, 100, 100, 100, 100, 100.0])
    got = judge(history, 100.0, True, S)
    # slopes: the pairs without the 0 are flat, so the median slope is 0 and the line 100;
    # residuals 0 but one: MAD 0, sigma = sqrt(100) = 10
    assert (got.expected, got.lo, got.hi, got.status) == (100.0, 70.0, 130.0, "ok")
    assert judge(history, 69.0, True, S).status == "low"
    assert judge(history, 131.0, True, S).status == "high"
    assert judge(history, 0.0, True, S).status == "missing"


def test_missing_new_and_no_baseline() -> None:
    # 2 expected: lo = max(0, 2 - 3 sqrt 2) = 0, and under min_expected a 0 is no outage
    assert judge(np.full(8, 2.0), 0.0, True, S).status == "ok"
    assert judge(np.full(8, 20.0), 0.0, True, S).status == "missing"
    assert judge(np.array([]), 5.0, False, S).status == "new"
    short = judge(np.array([20.0, 20.0]), 0.0, True, S)
    assert (short.status, short.expected, short.baseline_days) == ("no_baseline", None, 2)


def test_the_noise_model_widens_the_interval_by_hand() -> None:
    # relative errors -0.2 x 3, 0 x 2, +0.2 x 2: median 0, |e| median 0.2 -> 1.4826 x 0.2
    errors = np.array([-0.2, -0.2, -0.2, 0.0, 0.0, 0.2, 0.2, np.nan])
    assert relative_noise(errors, 7) == pytest.approx(0.29652)
    assert relative_noise(errors, 8) is None  # 7 known errors: too few
    # a flat history (no spread), 100 expected: sigma = max(0, sqrt 100, 0.3 x 100) = 30
    got = judge(np.full(8, 100.0), 150.0, True, S, noise=0.3)
    assert (got.expected, got.lo, got.hi, got.status) == (100.0, 10.0, 190.0, "ok")
    assert judge(np.full(8, 100.0), 150.0, True, S).status == "high"  # sigma 10: hi 130


def series_frame(counts: dict[dt.date, int], source: str = "s") -> pd.DataFrame:
    return pd.DataFrame(
        {"source": source, "event_type": "purchase", "event_date": list(counts),
         "n": list(counts.values())}
    )  # fmt: skip


def test_judge_days_fits_the_noise_on_the_series_own_errors() -> None:
    """Mondays sell 100 every week; the other weekdays alternate 80 / 120 from week to week.
    Eight same weekdays hold four of each, so every baseline says 100 (the Theil-Sen slope
    is 0, the intercept the median): Mondays' errors are 0, the others' -0.2 or +0.2. Over
    the 91 days before Monday 2024-05-27: 13 zeros, 36 x -0.2, 42 x +0.2 -> median 0, MAD
    0.2, noise 0.29652; the Mondays' own spread is 0, so without the noise model sigma is
    sqrt(100) = 10 and 150 is high; with it sigma is 29.652 and 150 is ok."""
    start, judged = dt.date(2024, 1, 1), dt.date(2024, 5, 27)
    counts = {}
    for k in range((judged - start).days + 1):
        day = start + dt.timedelta(days=k)
        counts[day] = 100 if day.weekday() == 0 else (80 if (k // 7) % 2 else 120)
    counts[judged] = 150
    frame = series_frame(counts)
    with_noise = judge_days(frame, judged, judged, S).iloc[0]
    sigma = 1.4826 * 0.2 * 100
    assert with_noise["expected"] == pytest.approx(100.0) and with_noise["status"] == "ok"
    assert with_noise["hi"] == pytest.approx(100 + 3 * sigma)
    assert with_noise["lo"] == pytest.approx(100 - 3 * sigma)
    without = judge_days(frame, judged, judged, FeedSettings(noise_days=0)).iloc[0]
    assert (without["hi"], without["status"]) == (pytest.approx(130.0), "high")


def test_closed_days_are_closed_and_left_out_of_the_baseline() -> None:
    """100 a day from Monday 2024-01-01; the shop closed on three Wednesdays (0 sold). With
    its calendar those days are ``closed`` and Wednesday 2024-03-06 is judged on the six
    open Wednesdays before it (01-03 .. 02-07, all 100): expected 100, ok. Without the
    calendar the three zeros are among its eight same weekdays and drag the line down."""
    start, judged = dt.date(2024, 1, 1), dt.date(2024, 3, 6)
    shut = [dt.date(2024, 2, 14), dt.date(2024, 2, 21), dt.date(2024, 2, 28)]
    counts = {start + dt.timedelta(days=k): 100 for k in range((judged - start).days + 1)}
    counts.update({day: 0 for day in shut})
    frame = series_frame(counts)
    calendar = FeedSettings(closed_days={"s": ("2024-02-14", "2024-02-21", "02-28")})
    got = judge_days(frame, shut[0], judged, calendar).set_index("event_date")
    assert [got.loc[d, "status"] for d in shut] == ["closed"] * 3
    assert got.loc[shut[0], ["expected", "lo", "hi"]].tolist() == [0.0, 0.0, 0.0]
    assert got.loc[judged, ["expected", "status", "baseline_days"]].tolist() == [
        pytest.approx(100.0), "ok", 6,
    ]  # fmt: skip
    # the calendar of another source, or of every source ("*"), as configured
    other = FeedSettings(closed_days={"t": ("02-28",)})
    assert judge_days(frame, shut[2], shut[2], other).iloc[0]["status"] == "missing"
    everyone = FeedSettings(closed_days={"*": ("02-28",)})
    assert judge_days(frame, shut[2], shut[2], everyone).iloc[0]["status"] == "closed"
    blind = judge_days(frame, judged, judged, FeedSettings()).iloc[0]
    assert blind["expected"] < 100.0 and blind["baseline_days"] == 8


START = dt.date(2024, 1, 1)  # a Monday
LAST = dt.date(2024, 3, 10)  # a Sunday: 10 weeks
VIEWS = [100, 100, 100, 100, 100, 60, 40]  # per weekday, Monday first
PURCHASES = [20, 20, 20, 20, 20, 10, 10]
OUTAGE = dt.date(2024, 3, 6)  # Wednesday: no purchase arrives
DROP = dt.date(2024, 3, 7)  # Thursday: 40 views instead of 100
SPIKE = dt.date(2024, 3, 8)  # Friday: 200 views instead of 100
FIRST_REVIEWS = dt.date(2024, 3, 9)  # Saturday: 5 reviews, the first ever


def planted_counts(day: dt.date) -> dict[str, int]:
    views = {DROP: 40, SPIKE: 200}.get(day, VIEWS[day.weekday()])
    purchases = 0 if day == OUTAGE else PURCHASES[day.weekday()]
    reviews = 5 if day >= FIRST_REVIEWS else 0
    return {"view": views, "purchase": purchases, "review": reviews}


MAPPING = """
name: feed
entities:
  events:
    format: csv
    header: true
    fields: [user, ts, type, item]
    timestamp: {field: ts, format: "yyyy-MM-dd HH:mm:ss"}
    columns: {user_id: user, event_type: type, item_id: item}
"""


@pytest.fixture()
def feed_lake(lake_root: str, tmp_path: Path) -> str:
    lines = ["user,ts,type,item"]
    day = START
    while day <= LAST:
        for event_type, n in planted_counts(day).items():
            for k in range(n):
                lines.append(f"u{k % 7},{day} 10:{k // 60:02d}:{k % 60:02d},{event_type},i{k}")
        day += dt.timedelta(days=1)
    (tmp_path / "events.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "feed.yaml").write_text(MAPPING)
    args = ["--source", "feed", "--input", str(tmp_path / "events.csv"),
            "--mapping", str(tmp_path / "feed.yaml"), "--as-of", str(LAST)]  # fmt: skip
    assert run("ingest", job_args(lake_root, *args)) == 0
    return lake_root


def test_detect_anomalies_flags_the_planted_days_and_reruns_identically(
    feed_lake: str, lake: Lake
) -> None:
    assert run("detect_anomalies", job_args(feed_lake, "--as-of", str(LAST))) == 0

    def table() -> dict[tuple[str, str], tuple[str, int, float | None]]:
        rows = lake.read("gold.feed_anomalies").collect()
        return {(str(r.event_date), r.event_type): (r.status, r.observed, r.expected)
                for r in rows}  # fmt: skip

    got = table()
    # 7 days x view and purchase + the 2 days reviews exist (nothing before their first day)
    assert len(got) == 7 * 2 + 2
    flagged = {k: v[0] for k, v in got.items() if v[0] not in ("ok", "no_baseline")}
    assert flagged == {
        (str(OUTAGE), "purchase"): "missing",
        (str(DROP), "view"): "low",
        (str(SPIKE), "view"): "high",
        (str(FIRST_REVIEWS), "review"): "new",
    }
    # constant weekdays: the baseline is the weekday's planted count, exactly
    assert got[(str(OUTAGE), "purchase")] == ("missing", 0, pytest.approx(20.0))
    assert got[(str(SPIKE), "view")] == ("high", 200, pytest.approx(100.0))
    assert got[("2024-03-10", "view")] == ("ok", 40, pytest.approx(40.0))
    # the day after their first, reviews have no same weekday of history yet
    assert got[("2024-03-10", "review")] == ("no_baseline", 5, None)

    assert run("detect_anomalies", job_args(feed_lake, "--as-of", str(LAST))) == 0
    assert table() == got  # the same days replaced by the same rows


def test_a_day_is_judged_on_the_days_before_it_only(feed_lake: str, lake: Lake) -> None:
    # judged as of the outage day (later days not yet looked at) and as of the last day:
    # the outage day's row is the same
    assert run("detect_anomalies", job_args(feed_lake, "--as-of", str(OUTAGE))) == 0
    early = lake.read("gold.feed_anomalies").where(f"event_date = '{OUTAGE}'").collect()
    assert run("detect_anomalies", job_args(feed_lake, "--as-of", str(LAST))) == 0
    late = lake.read("gold.feed_anomalies").where(f"event_date = '{OUTAGE}'").collect()

    def key(rows: list) -> list:
        return sorted((r.event_type, r.status, r.observed, r.expected, r.lo, r.hi) for r in rows)

    assert key(early) == key(late) and len(early) == 2


def test_bad_feed_settings_stop_with_a_message(feed_lake: str) -> None:
    args = job_args(feed_lake, "--as-of", str(LAST), "--set=anomalies.feed.min_weeks=1")
    assert run("detect_anomalies", args) != 0
    args = job_args(feed_lake, "--as-of", str(LAST), "--set=anomalies.feed.zz=1")
    assert run("detect_anomalies", args) != 0
    with pytest.raises(ConfigError, match=r"anomalies.feed.closed_days.feed: '13-01' is not"):
        FeedSettings.from_config(
            load_config("local", ["anomalies.feed.closed_days={feed: [13-01]}"])
        )
