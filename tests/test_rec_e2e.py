"""Recommender end to end on synthetic data: generate → ingest → profiles → train (every
source + hybrid evaluated on a time holdout) → score (every profile user gets K items); and
on a ratings-only source without any catalogue (a custom mapping, no categories, no
bronze.items), where every user must still get K distinct items."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from shopperlake.core.lake import Lake, load_catalog
from shopperlake.ingest.job import main as ingest
from shopperlake.profiles.job import main as build_profiles
from shopperlake.rec.job import score_main as score
from shopperlake.rec.job import train_main as train
from shopperlake.synthetic.generate import main as generate
from shopperlake.training.registry import Registry
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
    mv = Registry(Path(run.lake.root) / "models").get("recommender")
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
    version = Registry(Path(run.lake.root) / "models").get("recommender").version
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
    mv = Registry(Path(run.lake.root) / "models").get("recommender")
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
        Registry(Path(lake.root) / "models")
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


# Each protocol retrains every source (minutes on 2 cores); the splitters themselves are
# unit-tested in test_rec_units, so the end-to-end runs go with the slow tests.
@pytest.mark.slow
@pytest.mark.parametrize(("protocol", "split"), [("random", "random_split"),
                                                ("stratified", "stratified_split")])  # fmt: skip
def test_split_protocols_evaluate_every_source(run: Run, protocol: str, split: str) -> None:
    code = train(
        job_args(
            run.root, "--model", "recommender", "--as-of", AS_OF, *REC,
            "--set", f"recommender.split.protocol={protocol}",
        )
    )  # fmt: skip
    assert code == 0
    rows = run.lake.read("gold.model_metrics").where(
        (F.col("model") == "recommender") & (F.col("split") == split)
    )
    m = {(r.algorithm, r.metric): r.value for r in rows.where("reference IS NULL").collect()}
    assert {a for a, _ in m} == set(SOURCES) | {"hybrid"}
    assert all(0.0 <= m[(a, "recall@10")] <= 1.0 for a, _ in m)
    assert m[("hybrid", "recall@10")] > m[("popularity", "recall@10")], m


# -- a ratings-only source: user, item, stars, time; no categories, no items entity -----------
RATINGS_MAPPING = """\
name: ratings
entities:
  events:
    format: csv
    header: true
    fields: [user, movie, stars, rated_at]
    timestamp: {field: rated_at, format: "yyyy-MM-dd HH:mm:ss"}
    constants: {event_type: review}
    columns: {user_id: user, item_id: movie, rating: stars}
"""
RATINGS_REC = [
    "--set", "recommender.truth_event_types=[review]",  # nothing is bought in this source
    "--set", "recommender.blend.mode=weights",  # kept small: the rules are what is tested
    "--set", "recommender.blend.als=0.0",
    "--set", "recommender.ease.lambdas=[50.0]",
    "--set", "recommender.fallback_n=20",
    "--set", "recommender.candidates=20",
]  # fmt: skip


def write_ratings(folder: Path, users: int = 24, items: int = 20, seed: int = 3) -> None:
    """``users`` users rate 9 distinct items each (popular ones more often) on random days of
    2024-01-01 .. 2024-03-31."""
    rng = random.Random(seed)
    names = [f"m{i:02d}" for i in range(items)]
    lines = ["user,movie,stars,rated_at"]
    for u in range(users):
        rated = set()
        while len(rated) < 9:
            rated.add(names[min(int(rng.expovariate(1 / 6)), items - 1)])
        for movie in sorted(rated):
            when = dt.datetime(2024, 1, 1) + dt.timedelta(days=rng.randrange(91),
                                                          hours=rng.randrange(24))  # fmt: skip
            lines.append(f"u{u:02d},{movie},{rng.randint(1, 5)},{when:%Y-%m-%d %H:%M:%S}")
    folder.mkdir(parents=True)
    (folder / "ratings.csv").write_text("\n".join(lines) + "\n")


# A second lake and a full train + score (minutes): with the slow tests; the K-items rules
# are also checked on the module's run (test_every_profile_user_gets_k_items_under_the_rules).
@pytest.mark.slow
def test_ratings_only_source_without_catalogue_gets_k_distinct_items_per_user(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, raw, mapping = str(tmp_path / "lake"), tmp_path / "raw", tmp_path / "ratings.yaml"
    write_ratings(raw)
    mapping.write_text(RATINGS_MAPPING)
    ingest_args = ["--source", "ratings", "--mapping", str(mapping), "--input", str(raw)]
    assert ingest(job_args(root, *ingest_args, "--as-of", AS_OF)) == 0
    lake = Lake(spark, root, load_catalog())
    assert not lake.exists("bronze.items")
    assert lake.read("bronze.events").where("category IS NOT NULL").count() == 0
    assert build_profiles(job_args(root, "--as-of", AS_OF)) == 0
    assert train(job_args(root, "--model", "recommender", "--as-of", AS_OF, *RATINGS_REC)) == 0
    assert score(job_args(root, "--model", "recommender", "--as-of", AS_OF, *RATINGS_REC)) == 0

    recs = lake.read("gold.recommendations").where(F.col("as_of_date") == F.lit(AS_OF))
    users = lake.read("gold.user_profiles").where(F.col("as_of_date") == F.lit(AS_OF))
    per_user = recs.groupBy("user_id").agg(
        F.countDistinct("item_id").alias("items"), F.count(F.lit(1)).alias("n"),
        F.min("rank").alias("lo"), F.max("rank").alias("hi"),
    )  # fmt: skip
    want = users.select("user_id", F.lit(K).cast("long").alias("items"),
                        F.lit(K).cast("long").alias("n"), F.lit(1).alias("lo"),
                        F.lit(K).alias("hi"))  # fmt: skip
    assert users.count() == 24
    assertDataFrameEqual(per_user, want)

    # 20 items cannot make lists of 30: the job fails, names how many users are short, and
    # leaves gold.recommendations as it was.
    before = recs.collect()
    capsys.readouterr()
    more = ["--set", "recommender.k=30", "--set", "recommender.candidates=30",
            "--set", "recommender.fallback_n=30"]  # fmt: skip
    code = score(job_args(root, "--model", "recommender", "--as-of", AS_OF, *RATINGS_REC, *more))
    assert code == 2
    err = capsys.readouterr().err
    assert "24 of 24 users of the 2024-03-31 snapshot got fewer than recommender.k=30" in err
    after = lake.read("gold.recommendations").where(F.col("as_of_date") == F.lit(AS_OF))
    assertDataFrameEqual(after, before)
