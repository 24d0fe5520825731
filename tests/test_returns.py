"""Return prediction: labels, point-in-time history and the split by hand; the three jobs end
to end on a sample of the real Online Retail II file, against numbers read off that file
with pandas (never with the code under test)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shopperlake.core.config import Config
from shopperlake.core.errors import ConfigError, InputError
from shopperlake.core.lake import Lake
from shopperlake.core.session import project_root
from shopperlake.jobs import run
from shopperlake.returns.features import history_features, split_events, with_labels
from shopperlake.returns.spec import ReturnsSpec, returns_spec
from shopperlake.returns.train import ensemble, head_line_scores, head_rows
from shopperlake.returns.training_set import windows
from shopperlake.seqmodel.heads import FittedHead
from shopperlake.training.metrics import precision_at_top
from shopperlake.training.registry import Registry
from tests.conftest import job_args

T0 = dt.datetime(2011, 1, 1, 10, 0)


def events(spark: SparkSession, rows: list[tuple[str, str, str, str, float]]) -> DataFrame:
    """(user, item, order, event_type, days after T0) -> canonical-enough events."""
    data = [
        (f"e{i}", u, it, o, et, T0 + dt.timedelta(days=d), 2.0, 3)
        for i, (u, it, o, et, d) in enumerate(rows)
    ]
    cols = "event_id user_id item_id order_id event_type ts price quantity".split()
    return spark.createDataFrame(data, cols)


def test_labels_count_a_return_of_the_same_item_within_the_horizon(spark: SparkSession) -> None:
    ev = events(
        spark,
        [
            ("u1", "A", "o1", "purchase", 0),  # returned on day 10: 1
            ("u1", "B", "o1", "purchase", 0),  # B never returned: 0
            ("u1", "A", "o2", "purchase", 5),  # the day-10 return is within (5, 95]: 1
            ("u1", "A", "r1", "return", 10),
            ("u1", "A", "o3", "purchase", 200),  # nothing after: 0
            ("u2", "A", "o4", "purchase", 0),  # another user's return does not count: 0
            ("u3", "C", "o5", "purchase", 0),  # returned exactly 90 days later: 1
            ("u3", "C", "r2", "return", 90),
            ("u3", "D", "o6", "purchase", 0),  # returned 90 days and one hour later: 0
            ("u3", "D", "r3", "return", 90 + 1 / 24),
        ],
    )
    purchases, returns = split_events(ev)
    got = {r.order_id + r.item_id: r.label for r in with_labels(purchases, returns, 90).collect()}
    assert got == {"o1A": 1, "o1B": 0, "o2A": 1, "o3A": 0, "o4A": 0, "o5C": 1, "o6D": 0}


def test_history_features_use_only_days_before_the_purchase(spark: SparkSession) -> None:
    ev = events(
        spark,
        [
            ("u1", "A", "o1", "purchase", 0),
            ("u1", "B", "o1", "purchase", 0),
            ("u1", "A", "o2", "purchase", 5),
            ("u1", "A", "r1", "return", 10),
            ("u1", "A", "o3", "purchase", 200),
            ("u1", "A", "r2", "return", 200.1),  # same day as o3: not in o3's history
        ],
    )
    purchases, returns = split_events(ev)
    rows = {r.order_id + r.item_id: r for r in history_features(purchases, returns, 20).collect()}
    first = rows["o1A"]
    assert (first.cust_past_lines, first.cust_past_return_lines) == (0, 0)
    assert first.cust_return_rate is None  # no history: missing, filled by the transform
    o3 = rows["o3A"]
    # before day 200: lines o1A, o1B, o2A; one return (day 10); orders o1, o2; one cancel order
    assert (o3.cust_past_lines, o3.cust_past_orders, o3.cust_past_return_lines) == (3, 2, 1)
    assert o3.cust_return_rate == pytest.approx(1 / 3)
    assert o3.cust_cancel_rate == pytest.approx(1 / 2)
    assert (o3.pair_past_lines, o3.pair_past_return_lines) == (2, 1)
    assert (o3.cust_days_since_first, o3.cust_days_since_last) == (200, 195)
    assert o3.cust_days_since_last_return == 190
    # item A: 2 past lines, 1 return; the shop's past rate 1/3 weighs as 20 lines
    assert o3.item_return_rate == pytest.approx((1 + 20 / 3) / (2 + 20))
    # the recent window (90 days before day 200) holds no line
    assert o3.cust_recent_lines == 0
    o2 = rows["o2A"]  # day 5: the day-0 lines only
    assert (o2.cust_past_lines, o2.pair_past_lines, o2.pair_days_since_last) == (2, 1, 5)


def test_the_out_of_time_windows_of_the_issue() -> None:
    w = windows(dt.date(2011, 12, 8), ReturnsSpec(horizon_days=90), dt.date(2011, 6, 1))
    # train lines: bought before 2011-03-03, so every label window closes before 2011-06-01
    assert w == {
        "train_end": dt.date(2011, 3, 2),
        "test_start": dt.date(2011, 6, 1),
        "test_end": dt.date(2011, 9, 9),
    }
    assert w["train_end"] + dt.timedelta(days=90) < w["test_start"]


def test_precision_at_top_counts_an_exact_list() -> None:
    y = [1, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    p = [0.9, 0.8, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2]
    assert precision_at_top(y, p, 0.2) == 0.5  # top 2: 0.9 (1), 0.8 (0)
    assert precision_at_top(y, p, 0.3) == pytest.approx(2 / 3)
    assert precision_at_top(y, p, 0.01) == 1.0  # at least one line


def test_the_ensemble_is_the_mean_of_its_members_calibrated_scores() -> None:
    y = np.array([1, 0, 0])

    def scores(test: list[float], validation: list[float]) -> dict[str, tuple[Any, Any]]:
        return {"test": (y, np.array(test)), "validation": (y, np.array(validation))}

    evaluated = {
        "dnn": scores([0.6, 0.2, 0.1], [0.3, 0.3, 0.0]),
        "gbt": scores([0.2, 0.4, 0.3], [0.1, 0.5, 0.2]),
        "logreg": scores([0.9, 0.9, 0.9], [0.0, 0.0, 0.0]),
    }
    out = ensemble(evaluated, ("dnn", "gbt"))
    assert out["test"][1] == pytest.approx([0.4, 0.3, 0.2])
    assert out["validation"][1] == pytest.approx([0.2, 0.4, 0.1])
    assert out["test"][0].tolist() == [1, 0, 0]
    with pytest.raises(InputError, match="no scores from \\['sequence'\\]"):
        ensemble(evaluated, ("dnn", "sequence"))
    evaluated["gbt"]["test"] = (np.array([0, 1, 0]), evaluated["gbt"]["test"][1])
    with pytest.raises(InputError, match="test rows differ"):
        ensemble(evaluated, ("dnn", "gbt"))


@pytest.mark.parametrize(
    ("members", "message"),
    [
        (["dnn", "xgb"], "unknown scorer"),
        (["dnn"], "two or more distinct"),
        (["gbt", "gbt"], "two or more distinct"),
        (["dnn", "blend"], "sequence.enabled is false"),
        ("dnn,gbt", "must be a list of scorers"),  # a YAML string, not a list
    ],
)
def test_bad_ensembles_are_named(members: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        returns_spec(Config("test", {"returns": {"ensemble": members}}))
    bare = returns_spec(Config("test", {"returns": {"ensemble": [], "score_with": "dnn"}}))
    assert bare.ensemble == ()


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "32"])
def test_bad_head_lines_per_row_is_named(value: object) -> None:
    with pytest.raises(ConfigError, match="returns.sequence.lines_per_row must be an int >= 1"):
        returns_spec(Config("test", {"returns": {"sequence": {"lines_per_row": value}}}))
    spec = returns_spec(Config("test", {"returns": {"sequence": {"lines_per_row": 5}}}))
    assert spec.head_lines_per_row == 5 and spec.sequence.max_len == 50  # the rest is the head's


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"score_with": "gbt"}, "not one of"),
        ({"ensemble": []}, "returns.ensemble is \\[\\]"),
        ({"ensemble": ["dnn", "sequence"], "sequence": {"enabled": True}}, "cannot compute"),
    ],
)
def test_a_scorer_that_score_cannot_compute_is_refused(
    block: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        returns_spec(Config("test", {"returns": block}))


def test_the_sequence_head_asks_about_each_line_of_a_day_before_the_purchase(
    spark: SparkSession,
) -> None:
    d = dt.datetime
    lines = spark.createDataFrame(
        [  # line_id, user, item, purchase time, split, label
            ("l1", "u1", "a", d(2011, 3, 2, 9), "train", 0),
            ("l2", "u1", "b", d(2011, 3, 2, 17), "train", 1),  # same day: one row
            ("l0", "u1", "c", d(2011, 3, 2, 18), "train", 0),  # third line: a second chunk
            ("l3", "u1", "a", d(2011, 3, 9, 0, 5), "train", 0),
            ("l4", "u2", "a", d(2011, 3, 2, 12), "validation", 0),
            ("l5", "u2", "c", d(2011, 3, 2, 23, 59), "validation", 1),
        ],
        "line_id STRING, user_id STRING, item_id STRING, ts TIMESTAMP, split STRING, label INT",
    )
    got = sorted(tuple(r) for r in head_rows(lines, 2).collect())
    march = dt.date(2011, 3, 1)  # the history ends the day before the purchase day
    assert got == [
        ("u1", march, "train", ["l0", "l1"], ["c", "a"], [0, 0]),  # by line id, 2 a row
        ("u1", march, "train", ["l2"], ["b"], [1]),
        ("u1", dt.date(2011, 3, 8), "train", ["l3"], ["a"], [0]),
        ("u2", march, "validation", ["l4", "l5"], ["a", "c"], [0, 1]),
    ]
    keys = {"validation": pd.DataFrame({"line_id": ["l4", "l5"], "label": [0, 1]})}
    head = FittedHead(
        {"validation": (np.array([0, 1]), np.array([0.2, 0.7]))}, {}, [], [], {}, 0.0, {}, {},
        {"validation": np.array(["l4", "l5"], dtype=object)},
    )  # fmt: skip
    assert head_line_scores(keys, head)["validation"].tolist() == [0.2, 0.7]
    head.ids["validation"] = np.array(["l5", "l4"], dtype=object)
    with pytest.raises(InputError, match="validation lines differ"):
        head_line_scores(keys, head)
    head.ids["validation"] = np.array(["l4", "l5"], dtype=object)
    head.scores["validation"] = (np.array([1, 0]), np.array([0.2, 0.7]))
    with pytest.raises(InputError, match="validation labels differ"):
        head_line_scores(keys, head)


# -- end to end on real data ----------------------------------------------------------------

AS_OF = dt.date(2011, 12, 8)
TEST_START = dt.date(2011, 6, 1)


@pytest.fixture(scope="module")
def retail_sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """Every line of one customer in eight (ids 0 mod 8), as the original file has them."""
    src = project_root() / "data" / "online_retail" / "online_retail.csv"
    assert src.is_file(), f"{src} is missing: run `make data` (make test does)"
    raw = pd.read_csv(src, dtype=str, keep_default_na=False)
    cust = pd.to_numeric(raw["Customer ID"], errors="coerce")
    sample = raw[(cust % 8 == 0)]
    path = tmp_path_factory.mktemp("retail") / "sample.csv"
    sample.to_csv(path, index=False)
    return path, sample


def open_lines_by_hand(sample: pd.DataFrame) -> Counter[tuple[str, str, str, pd.Timestamp]]:
    """(order, item, customer, UTC time) of every line bought on the 90 days ending 2011-12-08
    by the sample's customers, of product codes at positive prices, not returned by the same
    customer by the end of that day: the rows gold.return_risk must hold."""
    df = sample.drop_duplicates().copy()
    local = pd.to_datetime(df["InvoiceDate"], format="%m/%d/%Y %H:%M")
    df["ts"] = local.dt.tz_localize("Europe/London").dt.tz_convert("UTC").dt.tz_localize(None)
    df["q"] = df["Quantity"].astype(float)
    df["price"] = df["Price"].astype(float)
    product = df["StockCode"].str.match(r"^\d{5}") | df["StockCode"].str.startswith("DCGS")
    ok = product & (df["price"] > 0) & (df["ts"] < pd.Timestamp("2011-12-09"))
    buys = df[ok & df["Invoice"].str.match(r"^\d") & (df["q"] > 0) & (df["q"] <= 1000)]
    rets = df[ok & df["Invoice"].str.startswith("C") & (df["q"] < 0) & (df["q"] >= -1000)]
    recent = buys[buys["ts"] >= pd.Timestamp("2011-09-10")].reset_index()
    pairs = recent.merge(rets[["Customer ID", "StockCode", "ts"]], on=["Customer ID", "StockCode"],
                         suffixes=("", "_r"))  # fmt: skip
    returned = pairs[(pairs["ts_r"] > pairs["ts"]) & (pairs["ts_r"] <= pairs["ts"] +
                     pd.Timedelta(days=90))]["index"]  # fmt: skip
    still_open = recent[~recent["index"].isin(returned)]
    customer = still_open["Customer ID"].astype(float).astype(int).astype(str)
    return Counter(
        zip(still_open["Invoice"], still_open["StockCode"].str.strip().str.upper(), customer,
            still_open["ts"], strict=True)
    )  # fmt: skip


def test_returns_jobs_end_to_end_on_online_retail(
    spark: SparkSession, lake: Lake, lake_root: str, retail_sample: tuple[Path, pd.DataFrame]
) -> None:
    path, sample = retail_sample
    fast = ["--set=evaluation.bootstrap.resamples=50", "--set=returns.dnn.epochs=6"]
    head = ["--set=returns.sequence.enabled=true", "--set=returns.sequence.epochs=2",
            "--set=returns.sequence.dim=8", "--set=returns.sequence.max_len=10"]  # fmt: skip
    assert run("ingest", job_args(lake_root, "--source", "online_retail", "--input", str(path),
                                  "--as-of", str(AS_OF))) == 0  # fmt: skip
    common = ["--model", "returns", "--as-of", str(AS_OF)]
    assert run("build_training_set", job_args(lake_root, *common, "--test-start",
                                              str(TEST_START))) == 0  # fmt: skip
    ts = lake.read("gold.return_training_set")
    bounds = {
        r.split: r
        for r in ts.groupBy("split").agg(
            F.min(F.to_date("ts")).alias("first"), F.max(F.to_date("ts")).alias("last"),
            F.countDistinct("user_id").alias("users"),
        ).collect()
    }  # fmt: skip
    assert bounds["test"].first >= TEST_START and bounds["test"].last <= dt.date(2011, 9, 9)
    for split in ("train", "validation"):
        assert bounds[split].last + dt.timedelta(days=90) < TEST_START  # window closed
    shared = (
        ts.where("split = 'train'").select("user_id").distinct()
        .join(ts.where("split = 'validation'").select("user_id").distinct(), "user_id")
        .count()
    )  # fmt: skip
    assert shared == 0  # validation customers are disjoint from training customers

    assert run("train", job_args(lake_root, "--model", "returns", *fast, *head)) == 0
    m = lake.read("gold.model_metrics").where("model = 'returns' AND split = 'test'")
    auc = {r.algorithm: r for r in m.where("metric = 'roc_auc' AND reference IS NULL").collect()}
    assert {"dnn", "gbt", "logreg", "customer_rate", "item_rate", "constant", "sequence",
            "blend"} <= set(auc)  # fmt: skip
    versus = m.where("metric = 'roc_auc' AND reference IS NOT NULL").collect()
    assert {(r.algorithm, r.reference) for r in versus} >= {("dnn", "sequence"), ("dnn", "blend"),
                                                            ("blend", "sequence")}  # fmt: skip
    preds = pd.read_csv(Registry(Path(lake_root) / "models").get("returns").path
                        / "predictions_test.csv")  # fmt: skip
    # the head scores each line (its item as the query): lines of one order differ
    assert (preds.groupby("order_id")["sequence_raw"].nunique() > 1).any()
    assert np.allclose(preds["blend_raw"], (preds["dnn_raw"] + preds["sequence_raw"]) / 2)
    assert "ensemble" in auc  # default returns.ensemble: the DNN and the GBT, calibrated
    assert {("ensemble", "dnn"), ("ensemble", "gbt"), ("dnn", "ensemble")} <= {
        (r.algorithm, r.reference) for r in versus
    }
    assert np.allclose(preds["ensemble"], (preds["dnn"] + preds["gbt"]) / 2)
    version = Registry(Path(lake_root) / "models").get("returns")
    # promoted on the scorer's own test figure: the path the registry compares exists
    saved = version.read_json("metrics.json")["test"]["line"]["ensemble"]["roc_auc"]
    assert saved == pytest.approx(auc["ensemble"].value)
    assert (version.path / "gbt.mllib").is_dir() and (
        version.path / "calibration_gbt.json"
    ).is_file()
    assert auc["dnn"].ci_low > 0.5  # the model ranks returns better than chance
    assert auc["constant"].value == 0.5
    order = m.where("metric = 'order_roc_auc' AND algorithm = 'dnn' AND reference IS NULL")
    assert order.count() == 1

    assert run("score", job_args(lake_root, *common)) == 0
    risk = lake.read("gold.return_risk").toPandas()
    got = Counter(zip(risk["order_id"], risk["item_id"], risk["user_id"], risk["ts"], strict=True))
    assert got == open_lines_by_hand(sample)
    assert risk["probability"].between(0, 1).all()
    by_order = risk.groupby("order_id")["probability"].max()
    assert np.allclose(risk["order_probability"], risk["order_id"].map(by_order))
    bands = np.where(risk["probability"] >= 0.3, "high",
                     np.where(risk["probability"] >= 0.1, "medium", "low"))  # fmt: skip
    assert (risk["risk_band"] == bands).all()

    # score's Spark path (MLlib GBT reloaded, Keras model rebuilt on the executors, each
    # calibrator as a pandas UDF) gives the test lines still open on the test's last day the
    # ensemble probability train computed for them on the driver: a line's features use only
    # the days before its purchase, so they are the same in both
    test_end = "2011-09-09"
    assert run("score", job_args(lake_root, "--model", "returns", "--as-of", test_end)) == 0
    late = lake.read("gold.return_risk").where(f"as_of_date = '{test_end}'").toPandas()
    both = late.assign(line_id=late["line_id"].astype(str)).merge(
        preds.assign(line_id=preds["line_id"].astype(str)), on="line_id"
    )
    assert len(both) >= 100
    assert np.allclose(both["probability"], both["ensemble"], rtol=1e-5, atol=1e-7)
    assert not np.allclose(both["probability"], both["dnn"], rtol=1e-3)  # not the DNN alone
