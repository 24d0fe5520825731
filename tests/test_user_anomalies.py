"""User anomalies: features, peer z-scores and alerts worked out by hand on a small planted
lake (one user per kind of abuse among 40 ordinary users), the evaluation against a truth by
hand, bad configuration, and the generator's planted abuse checked against its own events."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from shopperlake.anomalies import evaluate
from shopperlake.anomalies.users import robust_z
from shopperlake.core.config import load_config
from shopperlake.core.lake import Lake
from shopperlake.jobs import run
from shopperlake.synthetic import abuse
from shopperlake.synthetic.generate import GenParams, chunk_events, planted_abuse
from shopperlake.training.model_metrics import BootstrapSettings, metric_row
from tests.conftest import job_args

AS_OF = dt.date(2024, 3, 10)  # window: 2024-02-12 .. 03-10, recent days 03-04 .. 03-10
MAPPING = """
name: planted
entities:
  events:
    format: csv
    header: true
    fields: [user, session, ts, type, item, price, qty, order, rating, device, channel]
    timestamp: {field: ts, format: "yyyy-MM-dd HH:mm:ss"}
    columns: {user_id: user, session_id: session, event_type: type, item_id: item,
              price: "cast(price as double)", quantity: "cast(qty as int)", order_id: order,
              rating: "cast(rating as int)", device: device, channel: channel}
"""
HEADER = "user,session,ts,type,item,price,qty,order,rating,device,channel"


def _t(day: str, seconds: int) -> str:
    return str(dt.datetime.fromisoformat(day) + dt.timedelta(seconds=seconds))


def _order(user: str, k: int, day: str, at: int, item: str, device: str = "mobile",
           channel: str = "app", price: float = 10.0) -> list[str]:  # fmt: skip
    """View, cart and buy one unit in one session: three events 60 s apart."""
    s, o = f"s-{user}-{k}", f"o-{user}-{k}"
    return [
        f"{user},{s},{_t(day, at)},view,{item},{price},,,,{device},{channel}",
        f"{user},{s},{_t(day, at + 60)},add_to_cart,{item},{price},1,,,{device},{channel}",
        f"{user},{s},{_t(day, at + 120)},purchase,{item},{price},1,{o},,{device},{channel}",
    ]


def planted_lines() -> list[str]:
    lines = []
    for n in range(40):  # ordinary: one view and one order each
        u = f"n{n:02d}"
        lines.append(f"{u},s-{u}-v,{_t('2024-02-20', 0)},view,i1,5.0,,,,mobile,app")
        lines += _order(u, 0, "2024-02-20", 600, "i2")
    # a bot: 120 views 1 s apart at night, and 200 more after the as-of day (never read)
    lines += [f"b1,s-b1,{_t('2024-03-05', 3 * 3600 + k)},view,i{k},5.0,,,,desktop,web"
              for k in range(120)]  # fmt: skip
    lines += [f"b1,s-b1-late,{_t('2024-03-11', k)},view,i{k},5.0,,,,desktop,web"
              for k in range(200)]  # fmt: skip
    # an order burst: 6 orders 10 minutes apart
    for k in range(6):
        lines += _order("ob", k, "2024-03-06", 12 * 3600 + 600 * k, f"i{k}")
    # a review ring: 3 users give i9 5 stars on one day without buying it; g1 bought it first
    lines += [f"r{k},,{_t('2024-03-07', 3600 * (k + 1))},review,i9,,,,5,," for k in range(3)]
    lines += _order("g1", 0, "2024-02-20", 0, "i9")
    lines.append(f"g1,,{_t('2024-03-07', 100)},review,i9,,,,5,,")
    # a return abuser: 5 orders 2 hours apart, 4 returned three days later
    for k in range(5):
        lines += _order("ra", k, "2024-02-25", 7200 * k, f"i{k}")
    lines += [f"ra,,{_t('2024-02-28', 7200 * k)},return,i{k},10.0,1,o-ra-{k},,,"
              for k in range(4)]  # fmt: skip
    # an account switch: a mobile/app habit, then 3 dear orders on desktop/ads, 2 hours apart
    lines.append(f"sw,s-sw-old,{_t('2024-02-14', 0)},view,i1,5.0,,,,mobile,app")
    for k in range(3):
        lines += _order("sw", k, "2024-03-08", 7200 * k, f"i{k}", "desktop", "ads", 100.0)
    # a source without devices and channels: the same (null) pair before and after, no switch
    lines.append(f"nd,s-nd-old,{_t('2024-02-14', 0)},view,i1,5.0,,,,,")
    for k in range(3):
        lines += _order("nd", k, "2024-03-08", 7200 * k, f"i{k}", "", "", 100.0)
    # a wholesale order: 150 lines with one time stamp is not a bot's pace
    lines += [f"wh,s-wh,{_t('2024-03-02', 0)},purchase,i{k},2.0,10,o-wh,,desktop,web"
              for k in range(150)]  # fmt: skip
    return [HEADER, *lines]


PLANTED = {
    "bot": ["b1"],
    "order_burst": ["ob"],
    "review_spam": ["r0", "r1", "r2"],
    "return_abuse": ["ra"],
    "account_switch": ["sw"],
}
BUDGET = "--set=anomalies.users.budget=0.2"  # 50 users scored: at most 10 alerts per type


@pytest.fixture()
def planted_lake(lake_root: str, tmp_path: Path) -> str:
    (tmp_path / "events.csv").write_text("\n".join(planted_lines()) + "\n")
    (tmp_path / "planted.yaml").write_text(MAPPING)
    args = ["--source", "planted", "--input", str(tmp_path / "events.csv"),
            "--mapping", str(tmp_path / "planted.yaml"), "--as-of", "2024-03-11"]  # fmt: skip
    assert run("ingest", job_args(lake_root, *args)) == 0
    return lake_root


def test_features_alerts_and_reasons_by_hand(planted_lake: str, lake: Lake) -> None:
    assert run("detect_anomalies", job_args(planted_lake, "--as-of", str(AS_OF), BUDGET)) == 0
    rows = lake.read("gold.user_anomalies").collect()
    got: dict[str, list[str]] = {}
    for r in sorted(rows, key=lambda r: (r.anomaly_type, r.rank)):
        got.setdefault(r.anomaly_type, []).append(r.user_id)
        assert r.as_of == AS_OF and 0.5 <= r.score <= 1.0
    assert {t: sorted(u) for t, u in got.items()} == PLANTED
    by_user = {(r.user_id, r.anomaly_type): r for r in rows}

    bot = by_user[("b1", "bot")]
    # 120 views (the 200 after the as-of day are not read), gaps of 1 s: 120 x 60 / 119 a min
    assert bot.detector == "rapid_fire,view_only"
    assert bot.reasons[0] == (
        "120 views and 0 clicks with a median gap of 1.0 s, up to 60.5 a minute, 0 purchases"
    )
    assert bot.reasons[1] == "120 views in 1 sessions, 0 carts, active in 1 hours of the day"
    assert by_user[("ob", "order_burst")].reasons[0] == (
        "6 orders within one hour (6 orders in the window)"
    )
    assert (
        by_user[("r1", "review_spam")]
        .reasons[0]
        .startswith(
            "3 users gave one item the same extreme rating on one day without buying it; 1 reviews"
        )
    )
    assert by_user[("ra", "return_abuse")].reasons[0] == (
        "4 returns and 5 purchased lines in the window"
    )
    assert by_user[("sw", "account_switch")].reasons[0] == (
        "3 orders worth 300.0 in the last days from a device and channel never used before"
    )
    # the peak_rate z-score: 49 users without a session of 10+ browsing events (0; wh's 150
    # order lines are not browsing), b1 at 7200 / 119: MAD 0, mean absolute deviation
    # (7200 / 119) / 50, so z = 50 / 1.2533 = 39.9 (above the views per session's
    # (120 - 1) / (1.2533 x (119 + 3 x 1 + 1) / 50) = 38.6)
    assert bot.reasons[-1] == "peak_rate 60.5 is 39.9 robust SDs above its peers (all)"
    # returns: 48 users with 0, ra with 4: the mean absolute deviation 4 / 49 is below 1, so
    # the count's scale is 1 and z = 4, under z_alert: the rule's reason only
    assert by_user[("ra", "return_abuse")].reasons == [
        "4 returns and 5 purchased lines in the window"
    ]

    # re-running replaces the as-of's rows with the same rows
    assert run("detect_anomalies", job_args(planted_lake, "--as-of", str(AS_OF), BUDGET)) == 0
    again = lake.read("gold.user_anomalies").collect()
    key = lambda r: (r.user_id, r.anomaly_type, r.score, r.rank, r.detector, tuple(r.reasons))  # noqa: E731
    assert sorted(map(key, again)) == sorted(map(key, rows))


def test_bad_user_rules_stop_before_anything_is_written(planted_lake: str, lake: Lake) -> None:
    bad = [
        "--set=anomalies.users.rules.x={type: bots, when: 'events > 1', reason: r}",
        "--set=anomalies.users.rules.x={type: bot, when: 'events >>> 1', reason: r}",
        "--set=anomalies.users.rules.x={type: bot, when: 'no_such_feature > 1', reason: r}",
        "--set=anomalies.users.rules.x={type: bot, when: 'events + 1', reason: r}",
        "--set=anomalies.users.robust.bot=[peak_rate, velocity]",
        "--set=anomalies.users.rules.x={type: bot, when: 'events > 1', reason: '{speed}'}",
    ]
    for setting in bad:
        assert run("detect_anomalies", job_args(planted_lake, "--as-of", str(AS_OF), setting)) != 0
        assert not lake.exists("gold.user_anomalies") and not lake.exists("gold.feed_anomalies")


def test_robust_z_by_hand() -> None:
    frame = pd.DataFrame({
        "peer": ["p"] * 5 + ["q"] * 4,
        "peak_rate": [1.0, 2.0, 3.0, 4.0, 100.0, 0.0, 0.0, 0.0, 6.0],
        "returns": [0, 0, 0, 0, 2, 0, 0, 0, 3],
    })  # fmt: skip
    z = robust_z(frame, ["peak_rate", "returns"])
    # p: median 3, |x - 3| = 2 1 0 1 97, MAD 1
    assert z.loc[4, "z_peak_rate"] == pytest.approx(97 / 1.4826)
    assert z.loc[0, "z_peak_rate"] == pytest.approx(-2 / 1.4826)
    # q: median 0, MAD 0, mean absolute deviation 1.5
    assert z.loc[8, "z_peak_rate"] == pytest.approx(6 / (1.2533 * 1.5))
    # a count: p's mean absolute deviation 0.4 gives a scale under 1, so 1: z = 2
    assert z.loc[4, "z_returns"] == 2.0
    assert z.loc[8, "z_returns"] == 3.0  # q: 1.2533 x 0.75 = 0.94, floored at 1 too


def test_evaluation_by_hand() -> None:
    scores = pd.DataFrame({
        "user_id": ["a", "b", "c", "d"], "anomaly_type": ["bot"] * 4,
        "score": [0.9, 0.8, 0.7, 0.1],
    })  # fmt: skip
    alerts = pd.DataFrame({"user_id": ["a", "b"], "anomaly_type": ["bot", "bot"]})
    truth = pd.DataFrame(
        {"user_id": ["a", "c", "e"], "anomaly_type": ["bot", "bot", "review_spam"]}
    )
    cases = evaluate.user_cases(scores, alerts, pd.Series(["a", "b", "c", "d"]), truth)
    assert len(cases) == 5  # e was planted but not scored: score 0
    stats = evaluate.type_stats(cases, "bot", k=2)
    idx = np.arange(len(cases))
    # ranking a(+) b(-) c(+) d(-) e(-): AP = (1/1 + 2/3) / 2
    assert stats["pr_auc"](idx) == pytest.approx((1 + 2 / 3) / 2)
    assert stats["precision_at_k"](idx) == 0.5  # a and b
    assert stats["precision"](idx) == 0.5  # alerts a and b
    assert stats["recall"](idx) == 0.5  # a alerted, c not
    assert stats["fpr"](idx) == 0.5  # normal users b and d: b alerted
    assert evaluate.budget_k(0.01, 250) == 3 and evaluate.budget_k(0.01, 300) == 3
    # one planted spammer (e) among five users: a third of the resamples miss it, so recall
    # has its point estimate (e is not alerted: 0) and no interval, stored without bounds
    result = evaluate.evaluate_users(cases, BootstrapSettings(resamples=200))
    spam = result["review_spam"]["recall"]
    assert spam.estimate == 0.0 and math.isnan(spam.low) and math.isnan(spam.high)
    assert "no interval" in str(spam)
    row = metric_row("anomalies", "v", "rules", "s", "review_spam.recall", 0.0, "r",
                     dt.datetime(2024, 1, 1), spam)  # fmt: skip
    assert row[6] is None and row[7] is None
    # a statistic defined on every resample keeps its interval
    assert not math.isnan(result["bot"]["precision_at_k"].low)
    # feed cases: the planted outage is the synthetic source's; CDNOW's purchases of that
    # day (none expected: the source ended in 1998) are no positive
    judged = pd.DataFrame({
        "source": ["synthetic", "cdnow", "synthetic"],
        "event_date": [dt.date(2024, 6, 24)] * 2 + [dt.date(2024, 6, 25)],
        "event_type": ["purchase"] * 3, "observed": [0, 0, 90], "expected": [120.0, 0.0, 100.0],
    })  # fmt: skip
    planted = pd.DataFrame({"source": ["synthetic"], "date": ["2024-06-24"],
                            "event_type": ["purchase"]})  # fmt: skip
    feed = evaluate.feed_cases(judged, planted)
    assert list(feed["y"]) == [1, 0, 0]
    assert list(feed["score"]) == pytest.approx([1.0, 0.0, 0.1])  # shortfall 1 - 90/100
    # a truth without a source (older generated data) counts every source's row of that day
    assert list(evaluate.feed_cases(judged, planted.drop(columns="source"))["y"]) == [1, 1, 0]


PARAMS = GenParams(users=1000, items=300, days=63, seed=5, start_date=dt.date(2024, 1, 1),
                   abuse_share=0.05, chunk_users=500)  # fmt: skip


def test_planted_abuse_is_what_the_truth_says() -> None:
    truth = planted_abuse(PARAMS)
    with_abuse = pd.concat([chunk_events(PARAMS, c) for c in range(2)], ignore_index=True)
    plain = GenParams(**{**PARAMS.__dict__, "abuse_share": 0.0})
    normal = pd.concat([chunk_events(plain, c) for c in range(2)], ignore_index=True)
    extra_ids = with_abuse["event_id"].str[-9:].astype(int) >= abuse.ABUSE_EVENT_OFFSET
    outage = str(PARAMS.start_date + dt.timedelta(days=PARAMS.days - 4))
    # normal events unchanged, but the outage day's purchases, which are gone
    lost = (normal["event_type"] == "purchase") & normal["ts"].str.startswith(outage)
    assert lost.sum() > 0
    pd.testing.assert_frame_equal(
        with_abuse[~extra_ids].reset_index(drop=True),
        normal[~lost].reset_index(drop=True),
    )
    assert not (
        (with_abuse["event_type"] == "purchase") & with_abuse["ts"].str.startswith(outage)
    ).any()
    extra = with_abuse[extra_ids]
    kinds = truth.set_index("user_id")["kind"]
    assert set(extra["user_id"]) == set(truth.loc[truth["kind"] != "scraper", "user_id"])
    for kind, expected_types in {
        "click_bot": {"view", "click"}, "cart_bot": {"view", "add_to_cart"},
        "order_burst": {"view", "add_to_cart", "purchase"}, "review_spam": {"review"},
        "account_switch": {"view", "add_to_cart", "purchase"},
    }.items():  # fmt: skip
        users = kinds[kinds == kind].index
        assert len(users) > 0, kind
        assert set(extra.loc[extra["user_id"].isin(users), "event_type"]) == expected_types, kind
    # an order burst: at least 8 orders, all on the planted day
    for user in kinds[kinds == "order_burst"].index:
        orders = extra[(extra["user_id"] == user) & (extra["event_type"] == "purchase")]
        day = truth.set_index("user_id").loc[user, "date"]
        assert len(orders) >= 8 and orders["ts"].str.startswith(day).all()
    # review rings: members of one ring review the same item with the same rating on one day
    spam = truth[truth["kind"] == "review_spam"].merge(
        extra[extra["event_type"] == "review"], on="user_id"
    )
    per_ring = spam.groupby("ring").agg(
        items=("item_id", "nunique"), ratings=("rating", "nunique"), days=("date", "nunique"),
        size=("user_id", "nunique"),
    )  # fmt: skip
    assert (per_ring[["items", "ratings", "days"]] == 1).all().all()
    assert per_ring["size"].max() >= 3  # rings span chunks (two chunks here)
    assert set(per_ring.index) <= set(range(len(abuse.ring_targets(PARAMS, 300)[0])))
    # an account switch buys on a device x channel pair absent from the user's normal events
    for user in kinds[kinds == "account_switch"].index:
        before = normal[normal["user_id"] == user]
        pairs = set(before["device"] + "|" + before["channel"])
        mine = extra[extra["user_id"] == user]
        assert not set(mine["device"] + "|" + mine["channel"]) & pairs
    assert math.isclose(len(truth[truth["kind"] != "scraper"]) / 1000, 0.05, abs_tol=0.02)


def test_profiles_leave_out_the_flagged_bots_and_say_so(planted_lake: str, lake: Lake) -> None:
    assert run("detect_anomalies", job_args(planted_lake, "--as-of", str(AS_OF), BUDGET)) == 0

    def profiled(*sets: str) -> set[str]:
        assert run("build_profiles", job_args(planted_lake, "--as-of", str(AS_OF), *sets)) == 0
        rows = lake.read("gold.user_profiles").where(f"as_of_date = '{AS_OF}'").collect()
        return {r.user_id for r in rows}

    everyone = profiled("--set=anomalies.exclude=[]")
    assert "b1" in everyone and len(everyone) == 50
    # the default leaves out bots only: the order burst, spammers etc. keep their profiles
    assert profiled() == everyone - {"b1"}
    runs = lake.read("meta.runs").where("job = 'build_profiles'").orderBy("started_at").collect()
    assert [r.metrics["excluded_users"] for r in runs] == [0.0, 1.0]
    assert "gold.user_anomalies" in runs[-1].inputs
    # review spammers too, when asked
    assert profiled("--set=anomalies.exclude=[bot, review_spam]") == everyone - {
        "b1", "r0", "r1", "r2",
    }  # fmt: skip
    assert run("build_profiles", job_args(planted_lake, "--as-of", str(AS_OF),
                                          "--set=anomalies.exclude=[bots]")) != 0  # fmt: skip


def test_the_isolation_forest_isolates_an_obvious_outlier_first(spark: SparkSession) -> None:
    from shopperlake.anomalies.forest import ForestSettings, forest_scores

    rng = np.random.default_rng(0)
    rows = [(f"u{i}", float(a), float(b)) for i, (a, b) in enumerate(rng.normal(5, 1, (300, 2)))]
    rows.append(("far", 500.0, 500.0))  # log1p: 6.2 against about 1.8 +- 0.2
    df = spark.createDataFrame(rows, "user_id string, a double, b double")
    got = forest_scores(df, ["a", "b"], ForestSettings(trees=50)).toPandas()
    assert len(got) == 301
    top = got.sort_values("forest_score", ascending=False).iloc[0]
    assert top["user_id"] == "far" and top["forest_score"] > 0.7
    assert got["forest_score"].between(0, 1).all()


def test_leaving_bots_out_restores_the_item_cf_neighbour_by_hand(spark: SparkSession) -> None:
    """Item-CF (binary cosine, support >= 2) on four buyers of A (u1, u2 also bought B) and
    three bots that viewed A and twelve junk items X01..X12. With the bots: cos(A, X) =
    3 / sqrt(7 * 3) = 0.655 beats cos(A, B) = 2 / sqrt(7 * 2) = 0.535, so the eval users u3, u4
    (bought A, later B) get the twelve Xs first and B at rank 13: recall@10 = 0. Without them:
    cos(A, B) = 2 / sqrt(4 * 2) = 0.707, B first: recall@10 = NDCG@10 = 1."""
    from shopperlake.rec.exclusion_impact import BASE, exclusion_impact
    from shopperlake.rec.params import RecParams
    from shopperlake.training.model_metrics import BootstrapSettings

    def event(user: str, item: str, kind: str, day: str) -> tuple[object, ...]:
        d = dt.date.fromisoformat(day)
        return (user, item, kind, d, dt.datetime.combine(d, dt.time(12)))

    rows = [event(u, "A", "purchase", "2024-03-01") for u in ("u1", "u2", "u3", "u4")]
    rows += [event(u, "B", "purchase", "2024-03-01") for u in ("u1", "u2")]
    rows += [event(u, "B", "purchase", "2024-03-07") for u in ("u3", "u4")]  # the holdout
    junk = [f"X{i:02d}" for i in range(1, 13)]
    rows += [event(b, i, "view", "2024-03-02") for b in ("b1", "b2", "b3") for i in ["A", *junk]]
    events = spark.createDataFrame(
        rows, "user_id string, item_id string, event_type string, event_date date, ts timestamp"
    )
    catalog = spark.createDataFrame(
        [(i, None, 1.0) for i in ["A", "B", *junk]], "item_id string, category string, price double"
    )
    params = RecParams.from_config(load_config("local").require("recommender"))
    bots = spark.createDataFrame([("b1",), ("b2",), ("b3",)], "user_id string")
    impact = exclusion_impact(
        spark, events, catalog, params, dt.date(2024, 3, 5), dt.date(2024, 3, 10),
        spark.createDataFrame([("u3",), ("u4",)], "user_id string"), {"without bots": bots},
        1.0, BootstrapSettings(resamples=20),
    )  # fmt: skip
    assert impact.users == 2
    with_bots, without = impact.values[BASE]["itemcf"], impact.values["without bots"]["itemcf"]
    assert list(with_bots["user_id"]) == ["u3", "u4"]
    assert list(with_bots["recall@10"]) == [0.0, 0.0]
    assert list(without["recall@10"]) == [1.0, 1.0] and list(without["ndcg@10"]) == [1.0, 1.0]
    diff = impact.comparisons[("itemcf", "without bots")].differences["itemcf, " + BASE]
    assert diff["recall@10"].estimate == 1.0
