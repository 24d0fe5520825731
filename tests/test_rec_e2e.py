"""Recommender end to end on synthetic data: generate → ingest → profiles → train (every
source + hybrid evaluated on a time holdout) → score (every profile user gets K items)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from shopperlake.build_profiles import main as build_profiles
from shopperlake.generate import main as generate
from shopperlake.ingest.job import main as ingest
from shopperlake.lake import Lake, load_catalog
from shopperlake.ml.registry import Registry, registry_root
from shopperlake.ml.score import main as score
from shopperlake.ml.train import main as train
from tests.conftest import job_args

AS_OF = "2024-03-31"
K = 10
SOURCES = ("popularity", "itemcf", "ease", "als", "content", "repeat")  # blend weight > 0
REC = [
    "--set", "recommender.als.max_iter=5",
    "--set", "recommender.als.rank=8",
    "--set", "recommender.ease.lambdas=[20.0, 200.0]",
    "--set", "recommender.fallback_n=60",
    "--set", "recommender.candidates=40",
]  # fmt: skip


@dataclass
class Run:
    root: str
    lake: Lake
    train_code: int
    score_code: int


@pytest.fixture(scope="module")
def run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Run:
    base = tmp_path_factory.mktemp("rec")
    root, raw = str(base / "lake"), str(base / "raw")
    gen = ["--users", "400", "--items", "120", "--days", "91", "--seed", "5",
           "--start-date", "2024-01-01", "--output", raw, "--set", "generate.chunk_users=200",
           "--set", "generate.categories=8"]  # fmt: skip
    assert generate(job_args(root, *gen)) == 0
    assert ingest(job_args(root, "--source", "synthetic", "--input", raw, "--as-of", AS_OF)) == 0
    assert build_profiles(job_args(root, "--as-of", AS_OF)) == 0
    train_code = train(job_args(root, "--model", "recommender", "--as-of", AS_OF, *REC))
    score_code = score(job_args(root, "--model", "recommender", "--as-of", AS_OF, *REC))
    return Run(root, Lake(spark, root, load_catalog()), train_code, score_code)


def test_train_evaluates_every_source_and_hybrid_beats_popularity(run: Run) -> None:
    assert run.train_code == 0
    mv = Registry(registry_root(run.lake.root)).get("recommender")
    params = mv.read_json("params.json")
    assert params["ease_lambda"] in (20.0, 200.0)
    rows = run.lake.read("gold.model_metrics").where(
        (F.col("model") == "recommender") & (F.col("split") == "holdout")
    )
    m = {(r.algorithm, r.metric): r.value for r in rows.where("reference IS NULL").collect()}
    algos = {a for a, _ in m}
    assert algos == set(SOURCES) | {"hybrid"}
    for k in (5, 10, 20):
        for metric in ("precision", "recall", "ndcg", "map", "hit_rate", "coverage", "novelty"):
            assert ("hybrid", f"{metric}@{k}") in m
    assert m[("hybrid", "ndcg@10")] > 1.1 * m[("popularity", "ndcg@10")], m
    assert m[("hybrid", "recall@10")] > 1.1 * m[("popularity", "recall@10")], m
    # Not asserted here: hybrid >= every source on this holdout. With ~65 holdout users the
    # validation-tuned blend beats them all on recall@10 but not EASE on NDCG@10 (see
    # docs/recommendations.md); the test below checks it on validation, where it holds by
    # construction.


def test_holdout_figures_carry_intervals_and_paired_differences(run: Run) -> None:
    version = Registry(registry_root(run.lake.root)).get("recommender").version
    rows = (
        run.lake.read("gold.model_metrics")
        .where((F.col("model") == "recommender") & (F.col("split") == "holdout"))
        .where(F.col("version") == version)
        .collect()
    )
    values = {(r.algorithm, r.metric): r for r in rows if r.reference is None}
    diffs = {(r.reference, r.metric): r for r in rows if r.reference is not None}
    for algo in (*SOURCES, "hybrid"):
        for metric in ("recall@10", "ndcg@10"):
            r = values[(algo, metric)]
            assert r.ci_low <= r.value <= r.ci_high, r
            assert r.ci_high - r.ci_low > 0, r  # ~65 users: never an exact figure
    # hybrid - source on the same users: the mean of per-user differences (numpy, per-user
    # values) equals the difference of the Spark-averaged figures
    assert {ref for ref, _ in diffs} == set(SOURCES)
    for (ref, metric), d in diffs.items():
        assert d.algorithm == "hybrid"
        expected = values[("hybrid", metric)].value - values[(ref, metric)].value
        assert d.value == pytest.approx(expected, abs=1e-9)
        assert d.ci_low <= d.value <= d.ci_high


def test_blend_weights_are_tuned_on_validation_and_recorded(run: Run) -> None:
    mv = Registry(registry_root(run.lake.root)).get("recommender")
    params = mv.read_json("params.json")
    assert params["blend_mode"] == "tuned"
    weights = params["blend_weights"]
    assert set(weights) == set(SOURCES) and any(w > 0 for w in weights.values())
    assert params["blend_normalise"] in ("rrf", "minmax")
    rows = run.lake.read("gold.model_metrics").where(
        (F.col("model") == "recommender") & (F.col("split") == "validation")
        & (F.col("version") == mv.version) & (F.col("metric") == "ndcg@10")
    )  # fmt: skip
    valid = {r.algorithm: r.value for r in rows.collect()}
    assert set(valid) == set(SOURCES) | {"hybrid", "hybrid_config"}
    assert valid["hybrid"] >= max(valid.values())  # on validation: by construction


def test_every_profile_user_gets_k_items_under_the_rules(spark: SparkSession, run: Run) -> None:
    assert run.score_code == 0
    lake = run.lake
    recs = lake.read("gold.recommendations").where(F.col("as_of_date") == F.lit(AS_OF))
    users = lake.read("gold.user_profiles").where(F.col("as_of_date") == F.lit(AS_OF))
    per_user = recs.groupBy("user_id").agg(
        F.count(F.lit(1)).alias("n"),
        F.countDistinct("item_id").alias("items"),
        F.min("rank").alias("lo"),
        F.max("rank").alias("hi"),
    )
    assert per_user.count() == users.count()
    assert users.join(per_user, "user_id", "left_anti").count() == 0
    assert per_user.where(f"n <> {K} OR items <> {K} OR lo <> 1 OR hi <> {K}").count() == 0
    events = lake.read("bronze.events")
    bought = events.where("event_type = 'purchase' AND item_id IS NOT NULL").select(
        "user_id", "item_id"
    )
    assert recs.join(bought, ["user_id", "item_id"]).count() == 0  # no repeat categories
    items = lake.read("bronze.items").select("item_id", "category")
    assert recs.join(items, "item_id", "left_anti").count() == 0
    capped = recs.join(items, "item_id").groupBy("user_id", "category").count()
    assert capped.where("count > 4").count() == 0
    sources = {r.source for r in recs.select("source").distinct().collect()}
    weights = (
        Registry(registry_root(lake.root))
        .get("recommender")
        .read_json("params.json")["blend_weights"]
    )
    assert sources <= {s for s, w in weights.items() if w > 0} | {"popularity"}, sources
    assert len(sources) >= 2, sources  # a blend, not one source
    similar = lake.read("gold.similar_items").where(F.col("as_of_date") == F.lit(AS_OF))
    assert similar.count() > 0
    assert similar.where("item_id = similar_item_id").count() == 0
    before = recs.collect()
    assert score(job_args(run.root, "--model", "recommender", "--as-of", AS_OF, *REC)) == 0
    again = lake.read("gold.recommendations").where(F.col("as_of_date") == F.lit(AS_OF))
    assertDataFrameEqual(again, before)


def test_random_split_protocol_evaluates_every_source(run: Run) -> None:
    code = train(
        job_args(
            run.root, "--model", "recommender", "--as-of", AS_OF, *REC,
            "--set", "recommender.split.protocol=random",
        )
    )  # fmt: skip
    assert code == 0
    rows = run.lake.read("gold.model_metrics").where(
        (F.col("model") == "recommender") & (F.col("split") == "random_split")
    )
    m = {(r.algorithm, r.metric): r.value for r in rows.where("reference IS NULL").collect()}
    assert {a for a, _ in m} == set(SOURCES) | {"hybrid"}
    assert all(0.0 <= m[(a, "recall@10")] <= 1.0 for a, _ in m)
    assert m[("hybrid", "recall@10")] > m[("popularity", "recall@10")], m
