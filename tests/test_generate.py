"""The synthetic clickstream generator: determinism, contract of the files, planted signals."""

from __future__ import annotations

import collections
import datetime as dt
import json
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from shopperlake.core.config import load_config
from shopperlake.core.lake import Lake
from shopperlake.synthetic.generate import (
    GenParams,
    chunk_event_lines,
    chunk_events,
    item_lines,
    main,
    planted_users,
)

EVENT_TYPES = {
    "view", "click", "search", "add_to_cart", "remove_from_cart", "purchase", "return", "review",
}  # fmt: skip
TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
TS_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
START = dt.datetime(2024, 1, 1)  # a Monday
DAYS = 42
# The shared small data set: 400 users in chunks of 100 (4 chunks) over six whole weeks.
BASE = {
    "users": 400, "items": 120, "days": DAYS, "seed": 7, "files": 3, "malformed_rate": 0.02,
    "churn_share": 0.3, "bot_share": 0.05, "chunk_users": 100,
}  # fmt: skip


def problem(line: str) -> str | None:
    """Why a raw event line is unusable (a hand-written validator), or None when it is fine."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return "json"
    if not isinstance(obj, dict):
        return "json"
    if obj.get("event_type") not in EVENT_TYPES:
        return "event_type"
    price = obj.get("price")
    if price is not None and (not isinstance(price, int | float) or price < 0):
        return "price"
    if not isinstance(obj.get("user_id"), str) or not obj["user_id"]:
        return "user_id"
    ts = obj.get("ts")
    if not isinstance(ts, str) or not TS_SHAPE.match(ts):
        return "ts"
    try:
        dt.datetime.strptime(ts, TS_FORMAT)
    except ValueError:
        return "ts"
    return None


def read_lines(folder: Path) -> list[str]:
    parts = sorted(folder.glob("part-*"))
    assert parts, f"no part files in {folder}"
    return [line for part in parts for line in part.read_text(encoding="utf-8").splitlines()]


def generate(spark: SparkSession, root: Path, **overrides: Any) -> Path:
    """Run the job like the command line would; returns the output folder."""
    opts = {**BASE, **overrides}
    out = root / "out"
    argv = [
        "--users", str(opts["users"]), "--items", str(opts["items"]),
        "--days", str(opts["days"]), "--seed", str(opts["seed"]),
        "--files", str(opts["files"]), "--malformed-rate", str(opts["malformed_rate"]),
        "--start-date", "2024-01-01", "--output", str(out), "--lake", str(root / "lake"),
        "--set", f"generate.churn_share={opts['churn_share']}",
        "--set", f"generate.bot_share={opts['bot_share']}",
        "--set", f"generate.chunk_users={opts['chunk_users']}",
    ]  # fmt: skip
    assert main(argv, spark=spark) == 0
    return out


def base_params(**overrides: Any) -> GenParams:
    return GenParams(start_date=START.date(), categories=20, **{**BASE, **overrides})


@dataclass
class Dataset:
    root: Path
    out: Path
    lines: list[str]
    events: list[dict[str, Any]]  # the lines that pass `problem`
    items: dict[str, dict[str, Any]]
    users: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def base(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    root = tmp_path_factory.mktemp("gen-base")
    out = generate(spark, root)
    lines = read_lines(out / "events")
    items = [json.loads(x) for x in read_lines(out / "items")]
    users = [json.loads(x) for x in read_lines(out / "users")]
    return Dataset(
        root=root,
        out=out,
        lines=lines,
        events=[json.loads(x) for x in lines if problem(x) is None],
        items={x["item_id"]: x for x in items},
        users={x["user_id"]: x for x in users},
    )


def ts_of(event: dict[str, Any]) -> dt.datetime:
    return dt.datetime.strptime(event["ts"], TS_FORMAT)


# -- determinism -----------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(spark: SparkSession, base: Dataset, tmp_path: Path):
    again = generate(spark, tmp_path)
    for folder in ("events", "items", "users"):
        first = [p.read_bytes() for p in sorted((base.out / folder).glob("part-*"))]
        second = [p.read_bytes() for p in sorted((again / folder).glob("part-*"))]
        assert first == second, folder
    assert len(list((base.out / "events").glob("part-*"))) == 3  # 4 chunks in 3 files


def test_partitioning_does_not_change_the_lines(spark: SparkSession, base: Dataset, tmp_path):
    spark.conf.set("spark.sql.shuffle.partitions", "5")
    try:
        out = generate(spark, tmp_path, files=1)
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", "2")
    assert len(list((out / "events").glob("part-*"))) == 1
    assert sorted(read_lines(out / "events")) == sorted(base.lines)
    assert sorted(read_lines(out / "users")) == sorted(read_lines(base.out / "users"))


def test_different_seed_gives_different_data(spark: SparkSession, base: Dataset, tmp_path):
    out = generate(spark, tmp_path, seed=8)
    lines = read_lines(out / "events")
    assert len(set(lines) & set(base.lines)) < 0.01 * len(base.lines)
    prices = {x["item_id"]: x["price"] for x in map(json.loads, read_lines(out / "items"))}
    assert sum(prices[i] != base.items[i]["price"] for i in prices) > 100


# -- contract of the files -------------------------------------------------------------------


def test_all_event_types_present(base: Dataset):
    assert {e["event_type"] for e in base.events} == EVENT_TYPES


def test_items_and_users_files(base: Dataset):
    assert len(base.items) == 120 and len(read_lines(base.out / "items")) == 120
    assert set(base.items) == {f"i{n:05d}" for n in range(120)}
    for item in base.items.values():
        assert re.fullmatch(r"c\d{2}", item["category"])
        assert item["price"] > 0 and round(item["price"], 2) == item["price"]
        assert item["brand"] and item["title"]
    assert len({x["category"] for x in base.items.values()}) == 20
    assert set(base.users) == {f"u{n:06d}" for n in range(400)}
    for user in base.users.values():
        dt.date.fromisoformat(user["signup_date"])
        assert user["email"].endswith("@example.com") and user["country"] and user["age_band"]
    signups = sorted(dt.date.fromisoformat(u["signup_date"]) for u in base.users.values())
    late = [d for d in signups if d >= dt.date(2024, 1, 22)]  # joined in the 2nd half
    assert signups[0] < dt.date(2023, 1, 1) and 10 <= len(late) <= 80


def test_events_agree_with_catalog_and_users(base: Dataset):
    assert len({e["event_id"] for e in base.events}) == len(base.events)
    for e in base.events:
        assert e["user_id"] in base.users
        assert ts_of(e).date() >= dt.date.fromisoformat(base.users[e["user_id"]]["signup_date"])
        assert e["device"] in {"mobile", "desktop", "tablet"} and e["channel"]
        if e["event_type"] == "search":
            assert e.get("item_id") is None and e.get("price") is None
            assert e["query"] and re.fullmatch(r"c\d{2}", e["category"])
            continue
        item = base.items[e["item_id"]]
        assert (e["category"], e["price"]) == (item["category"], item["price"]), e
        has_qty = e["event_type"] in {"add_to_cart", "remove_from_cart", "purchase", "return"}
        assert (e.get("quantity") is not None) == has_qty, e
        if has_qty:
            assert isinstance(e["quantity"], int) and e["quantity"] >= 1
        if e["event_type"] == "review":
            assert e["rating"] in {1, 2, 3, 4, 5}
        else:
            assert e.get("rating") is None


def test_purchases_have_orders_and_returns_follow_them(base: Dataset):
    purchases = [e for e in base.events if e["event_type"] == "purchase"]
    assert len(purchases) > 50
    bought: dict[tuple[str, str], dict[str, Any]] = {}
    for p in purchases:
        assert re.fullmatch(r"o\d{6}-\d{4,}", p["order_id"]) and p["session_id"]
        assert p["order_id"][1:] == p["session_id"][1:]  # the order of that session
        assert p["order_id"][1:7] == p["user_id"][1:]
        bought[(p["order_id"], p["item_id"])] = p
    returns = [e for e in base.events if e["event_type"] == "return"]
    matched = [r for r in returns if (r["order_id"], r["item_id"]) in bought]
    assert len(matched) >= 0.9 * len(returns) > 0
    for r in matched:
        p = bought[(r["order_id"], r["item_id"])]
        assert r["user_id"] == p["user_id"] and r["quantity"] == p["quantity"]
        assert ts_of(r) - ts_of(p) >= dt.timedelta(days=1)
    for e in base.events:
        if e["event_type"] not in {"purchase", "return"}:
            assert e.get("order_id") is None


def test_no_event_outside_the_period(base: Dataset):
    stamps = [ts_of(e) for e in base.events]
    assert min(stamps) >= START
    assert max(stamps) < START + dt.timedelta(days=DAYS)
    assert max(stamps) >= START + dt.timedelta(days=DAYS - 1)  # the last day is used


# -- malformed lines -------------------------------------------------------------------------


def test_malformed_share_matches_rate_and_run_log(spark: SparkSession, base: Dataset):
    reasons = collections.Counter(problem(line) for line in base.lines)
    bad = len(base.lines) - reasons[None]
    expected = 0.02 * len(base.lines)
    assert abs(bad - expected) < 4 * math.sqrt(expected) + 1, (bad, expected)
    assert set(reasons) == {None, "json", "event_type", "price", "user_id", "ts"}
    cfg = load_config("local")
    runs = Lake.from_config(spark, cfg, str(base.root / "lake")).read("meta.runs").collect()
    assert len(runs) == 1 and runs[0]["status"] == "success"
    assert runs[0]["rows_written"] == len(base.lines)
    assert runs[0]["metrics"]["malformed_lines"] == bad
    good = collections.Counter(e["event_type"] for e in base.events)
    for event_type in EVENT_TYPES:
        assert runs[0]["metrics"][f"events_{event_type}"] == good[event_type]


def test_every_planted_malformed_line_is_really_broken():
    params = base_params(malformed_rate=0.05)
    expected_reason = {
        "truncated_json": "json",
        "unknown_event_type": "event_type",
        "negative_price": "price",
        "missing_user_id": "user_id",
        "bad_ts": "ts",
    }
    frame = chunk_event_lines(params, 1)
    kinds = collections.Counter(frame["malformed"].dropna())
    assert set(kinds) == set(expected_reason)
    for line, kind in zip(frame["value"], frame["malformed"], strict=True):
        assert problem(line) == (expected_reason[kind] if kind else None), (kind, line)


# -- planted behaviour -----------------------------------------------------------------------


def test_churners_have_no_events_after_their_stop_day(base: Dataset):
    truth = planted_users(base_params())
    assert list(truth["user_id"]) == [f"u{n:06d}" for n in range(400)]
    humans = truth[~truth["is_bot"]]
    assert 0.2 < humans["is_churner"].mean() < 0.4  # churn_share 0.3
    churners = truth[truth["is_churner"]]
    assert (churners["stop_day"] < DAYS).all() and churners["stop_day"].nunique() > 10
    assert (truth.loc[~truth["is_churner"], "stop_day"] == DAYS).all()
    stop = dict(zip(churners["user_id"], churners["stop_day"], strict=True))
    last: dict[str, dt.datetime] = {}
    for e in base.events:
        if e["user_id"] in stop:
            last[e["user_id"]] = max(last.get(e["user_id"], START), ts_of(e))
    assert len(last) > 0.4 * len(stop)  # short stays and a decaying rate leave some silent
    for user, seen in last.items():
        assert seen < START + dt.timedelta(days=int(stop[user])), user
    # Non-churners who joined before the period are still active in its last two weeks.
    old = truth[(truth["signup_day"] < 0) & ~truth["is_churner"] & ~truth["is_bot"]]
    recent = {e["user_id"] for e in base.events if ts_of(e) >= START + dt.timedelta(days=28)}
    assert sum(u in recent for u in old["user_id"]) > 0.5 * len(old)


def test_bots_view_much_more_per_session_and_never_buy(base: Dataset):
    truth = planted_users(base_params())
    bots = set(truth.loc[truth["is_bot"], "user_id"])
    assert 8 <= len(bots) <= 35  # bot_share 0.05 of 400
    views: dict[bool, collections.Counter[str]] = {
        True: collections.Counter(),
        False: collections.Counter(),
    }
    night: dict[bool, list[bool]] = {True: [], False: []}
    for e in base.events:
        is_bot = e["user_id"] in bots
        if e["event_type"] == "view":
            views[is_bot][e["session_id"]] += 1
            night[is_bot].append(ts_of(e).hour < 6)
        if is_bot:
            assert e["event_type"] in {"view"}, e
    bot_mean = statistics.mean(views[True].values())
    human_mean = statistics.mean(views[False].values())
    assert bot_mean > 40 and human_mean < 5  # 20 + Poisson(40) vs 1 + Poisson(2.5)
    assert statistics.mean(night[True]) > 0.15  # uniform hours: 6/24 at night
    assert statistics.mean(night[False]) < 0.10  # the diurnal profile is low at night


def test_weekends_and_evenings_are_busier(base: Dataset):
    truth = planted_users(base_params())
    bots = set(truth.loc[truth["is_bot"], "user_id"])
    stamps = [ts_of(e) for e in base.events if e["user_id"] not in bots]
    per_weekday = collections.Counter(s.weekday() for s in stamps)  # 6 of each weekday
    weekend = (per_weekday[5] + per_weekday[6]) / 2
    weekday = sum(per_weekday[d] for d in range(5)) / 5
    assert weekend > 1.15 * weekday
    per_hour = collections.Counter(s.hour for s in stamps)
    evening = per_hour[19] + per_hour[20] + per_hour[21]
    assert evening > 4 * (per_hour[2] + per_hour[3] + per_hour[4])


def test_item_popularity_is_skewed_and_users_have_favourites(base: Dataset):
    truth = planted_users(base_params())
    humans = truth[~truth["is_bot"]]
    views = collections.Counter(
        e["item_id"] for e in base.events
        if e["event_type"] == "view" and e["user_id"] in set(humans["user_id"])
    )  # fmt: skip
    top = sum(n for _, n in views.most_common(12))  # the top 10 % of 120 items
    assert top > 0.35 * sum(views.values())
    favourite = dict(zip(humans["user_id"], humans["favourite_category"], strict=True))
    per_user: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for e in base.events:
        if e["user_id"] in favourite and e["event_type"] == "view":
            per_user[e["user_id"]][e["category"]] += 1
    busy = [u for u, c in per_user.items() if sum(c.values()) >= 20]
    hits = sum(per_user[u].most_common(1)[0][0] == f"c{favourite[u]:02d}" for u in busy)
    assert len(busy) > 50 and hits > 0.7 * len(busy)


YEAR_PARAMS = GenParams(
    users=1000, items=500, days=180, seed=3, start_date=START.date(), bot_share=0.0
)


@pytest.fixture(scope="module")
def half_year() -> pd.DataFrame:
    """One chunk of 1,000 users over 180 days, from the pure helper (no Spark)."""
    return chunk_events(YEAR_PARAMS, 0)


def test_volume_rates_and_ratings_over_180_days(half_year: pd.DataFrame):
    """About 100 events per user over 180 days; returns 5-10 % and reviews 10-20 % of the
    purchased lines; returned items are rated lower."""
    events = half_year
    assert 70 <= len(events) / 1000 <= 140
    counts = events["event_type"].value_counts()
    assert 0.05 <= counts["return"] / counts["purchase"] <= 0.10
    assert 0.10 <= counts["review"] / counts["purchase"] <= 0.20
    assert counts["add_to_cart"] > counts["purchase"] > 0.4 * counts["add_to_cart"]  # abandonment
    reviews = events[events["event_type"] == "review"]
    assert set(reviews["rating"].astype(int)) == {1, 2, 3, 4, 5}
    assert reviews["order_id"].isna().all()
    returns = events[events["event_type"] == "return"]
    returned = set(zip(returns["user_id"], returns["item_id"], strict=True))
    was_returned = [k in returned for k in zip(reviews["user_id"], reviews["item_id"], strict=True)]
    ratings = reviews["rating"].astype(float).to_numpy()
    returned_mean = ratings[was_returned].mean()
    kept_mean = ratings[[not r for r in was_returned]].mean()
    assert sum(was_returned) >= 10 and returned_mean < kept_mean - 1.0
    # No session crosses the end: nothing at or after day 180.
    assert events["ts"].max() < "2024-06-29T00:00:00Z"


def test_invalid_arguments_fail_with_a_clear_message(spark: SparkSession, tmp_path, capsys):
    common = ["--output", str(tmp_path / "out"), "--lake", str(tmp_path / "lake")]
    assert main(["--users", "0", *common], spark=spark) == 2
    assert "--users must be at least 1" in capsys.readouterr().err
    assert main(["--start-date", "2024-13-01", *common], spark=spark) == 2
    assert "--start-date" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):
        main(["--users", "10"], spark=spark)  # --output is required


def test_price_sensitive_users_cart_expensive_items_less(half_year: pd.DataFrame):
    events = half_year[half_year["item_id"].notna()]
    medians = events.drop_duplicates("item_id").groupby("category")["price"].median()
    expensive = events[events["price"] > 2 * events["category"].map(medians)]
    truth = planted_users(YEAR_PARAMS).set_index("user_id")["price_sensitivity"]
    sensitivity = expensive["user_id"].map(truth)

    def cart_rate(rows: pd.DataFrame) -> float:
        kinds = rows["event_type"].value_counts()
        return float(kinds.get("add_to_cart", 0) / kinds["view"])

    keen, careful = cart_rate(expensive[sensitivity < 0.4]), cart_rate(expensive[sensitivity > 0.6])
    # At twice the median price the planted factor is 0.5 ** (1.5 * s): about 0.8 vs 0.45.
    assert careful < 0.8 * keen, (careful, keen)


def test_path_sessions_walk_each_category_in_item_order():
    """With sequential_share 1 every human session's views follow one another along their
    category in item-id order (cyclic); the successor is worked out here from the items file
    (id and category), not from the generator's catalog arrays. With the default 0 the views
    are independent draws: few consecutive pairs happen to be successors. (Bots, whose views
    are uniform draws, are left out.)"""
    params = base_params(users=60, items=120, days=30, bot_share=0.0, sequential_share=1.0)
    items = [json.loads(x) for c in range(params.n_item_chunks) for x in item_lines(params, c)]
    by_cat: dict[str, list[str]] = {}
    for it in sorted(items, key=lambda x: x["item_id"]):
        by_cat.setdefault(it["category"], []).append(it["item_id"])
    successor = {
        ids[i]: ids[(i + 1) % len(ids)] for ids in by_cat.values() for i in range(len(ids))
    }

    def pairs(frame: pd.DataFrame) -> tuple[int, int]:
        views = frame[frame["event_type"] == "view"].sort_values(["session_id", "ts", "event_id"])
        same = views["session_id"].to_numpy()[1:] == views["session_id"].to_numpy()[:-1]
        prev, cur = views["item_id"].to_numpy()[:-1][same], views["item_id"].to_numpy()[1:][same]
        return sum(successor[a] == b for a, b in zip(prev, cur, strict=True)), int(same.sum())

    walked, total = pairs(chunk_events(params, 0))
    assert total > 100 and walked == total
    drawn, total0 = pairs(chunk_events(base_params(users=60, items=120, days=30, bot_share=0.0), 0))
    assert total0 > 100 and drawn / total0 < 0.2
