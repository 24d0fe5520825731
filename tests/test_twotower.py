"""Two-tower recommender: Horovod training (2 processes, Petastorm-fed) on planted data, and
blockwise retrieval against a brute-force reference.

Planted structure: two user groups, each interacting only with its own 20 items (Zipf-like
popularity inside the group); one pair per user held out. The catalogue carries no category
(``unknown``) and there are no profile affinities, so the towers can only learn the groups
from the interactions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession

from shopperlake.rec.twotower import TwoTower, fit_twotower, recommend_twotower

pytestmark = pytest.mark.training
GROUP_USERS, GROUP_ITEMS, PER_USER = 40, 20, 6
PARAMS = {
    "dim": 8,
    "hidden": 16,
    "epochs": 12,
    "batch_size": 32,
    "negatives": 8,
    "learning_rate": 0.01,
    "recent_items": 5,
    "user_categories": 2,
    "num_proc": 2,
}


@dataclass
class Planted:
    model: TwoTower
    users: DataFrame
    train: dict[str, set[str]]  # user → training items
    held_out: dict[str, str]  # user → held-out item
    interactions: DataFrame
    catalog: DataFrame
    affinities: DataFrame


def group(name: str) -> str:
    return name.split("_")[0]


@pytest.fixture(scope="module")
def planted(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Planted:
    rng = np.random.default_rng(11)
    popularity = 1.0 / np.arange(1, GROUP_ITEMS + 1) ** 0.8
    popularity /= popularity.sum()
    rows: list[tuple[str, str, float]] = []
    train: dict[str, set[str]] = {}
    held_out: dict[str, str] = {}
    for g in ("a", "b"):
        for u in range(GROUP_USERS):
            user = f"{g}_u{u}"
            picks = rng.choice(GROUP_ITEMS, size=PER_USER, replace=False, p=popularity)
            items = [f"{g}_i{i}" for i in picks]
            held_out[user] = items[0]
            train[user] = set(items[1:])
            rows.extend((user, item, 1.0 + float(rng.random())) for item in items[1:])
    interactions = spark.createDataFrame(rows, "user_id STRING, item_id STRING, weight DOUBLE")
    catalog = spark.createDataFrame(
        [(f"{g}_i{i}", None, 2.0) for g in ("a", "b") for i in range(GROUP_ITEMS)],
        "item_id STRING, category STRING, price DOUBLE",
    )
    affinities = spark.createDataFrame(
        [], "user_id STRING, category STRING, share DOUBLE, user_band STRING"
    )
    cache = (Path(tmp_path_factory.mktemp("petastorm")) / "cache").as_uri()
    model = fit_twotower(spark, interactions, catalog, affinities, PARAMS, cache)
    users = spark.createDataFrame([(u,) for u in [*train, "cold"]], "user_id STRING")
    return Planted(model, users, train, held_out, interactions, catalog, affinities)


def test_training_learns_the_planted_groups(spark: SparkSession, planted: Planted) -> None:
    model = planted.model
    assert model.sizes.users == 2 * GROUP_USERS and model.sizes.items == 2 * GROUP_ITEMS
    assert model.categories == ["unknown"]
    assert model.train_rows == 2 * GROUP_USERS * (PER_USER - 1)
    assert model.history["loss"][-1] < model.history["loss"][0]
    every = 2 * GROUP_ITEMS
    scored: pd.DataFrame = recommend_twotower(spark, model, planted.users, every).toPandas()
    hits, in_group, auc = [], [], []
    for user, rows in scored.groupby("user_id"):
        if user == "cold":
            continue
        assert len(rows) == every
        ranked = rows.sort_values("score", ascending=False)
        fresh = ranked[~ranked["item_id"].isin(planted.train[user])]
        top = list(fresh["item_id"][:10])
        hits.append(planted.held_out[user] in top)
        in_group.append(np.mean([group(i) == group(user) for i in top]))
        score = dict(zip(ranked["item_id"], ranked["score"], strict=True))
        target = score[planted.held_out[user]]
        others = [s for i, s in score.items() if group(i) != group(user)]
        auc.append(np.mean([target > s for s in others]))
    # Random ranking of the 35 items a user has not trained on: recall@10 ≈ 10/35 ≈ 0.29,
    # half the top-10 in the user's group, AUC 0.5.
    assert np.mean(hits) > 0.5, np.mean(hits)
    assert np.mean(in_group) > 0.85, np.mean(in_group)
    assert np.mean(auc) > 0.9, np.mean(auc)


def test_blockwise_retrieval_equals_brute_force(spark: SparkSession, planted: Planted) -> None:
    params = dataclasses.replace(planted.model.params, block_items=7)  # 40 items: 6 blocks
    model = dataclasses.replace(planted.model, params=params)
    n = 5
    got: pd.DataFrame = recommend_twotower(
        spark, model, planted.users, n, rows_per_chunk=16
    ).toPandas()

    # Reference: both towers applied on the driver to the same inputs, full sort in numpy.
    user_tower, item_tower = model.towers()
    inputs: pd.DataFrame = model.user_inputs(planted.users).toPandas()
    inputs = inputs.sort_values("user_id")
    u = user_tower(
        [
            inputs["user_idx"].to_numpy("int32"),
            np.array(inputs["hist"].tolist(), dtype="int32"),
            np.array(inputs["cats"].tolist(), dtype="int32"),
            np.array(inputs["shares"].tolist(), dtype="float32"),
            inputs["band"].to_numpy("int32"),
        ]
    ).numpy()
    idx = np.arange(1, model.sizes.items + 1)
    v = item_tower([idx, model.item_category[idx], model.item_band[idx]]).numpy()
    scores = u @ v.T
    order = np.argsort(-scores, axis=1)[:, :n]
    assert set(got["user_id"]) == set(inputs["user_id"])  # the cold user too
    for row, user in enumerate(inputs["user_id"]):
        mine = got[got["user_id"] == user].sort_values("score", ascending=False)
        assert list(mine["item_id"]) == [model.item_ids[j] for j in order[row]], user
        np.testing.assert_allclose(mine["score"], scores[row, order[row]], rtol=1e-4, atol=1e-5)


def test_pipeline_fits_two_tower_when_blended(
    spark: SparkSession, planted: Planted, tmp_path: Path
) -> None:
    """Through ``fit_sources`` / ``final_lists`` as train and score use it: with a positive
    blend weight the two-tower is trained (Horovod, Petastorm cache from the argument), every
    user gets its candidates, and the hybrid lists are made of them; ``release`` frees its
    cached user features."""
    from pyspark.sql import functions as F

    from shopperlake.core.config import load_config
    from shopperlake.rec.params import RecParams
    from shopperlake.rec.pipeline import Inputs, final_lists, fit_sources, release

    base = RecParams.from_config(load_config("local").section("recommender"))
    params = dataclasses.replace(
        base.with_blend({"twotower": 1.0}), twotower={**PARAMS, "epochs": 3}
    )
    users = planted.users.where("user_id <> 'cold'").withColumn("segment", F.lit(None))
    inp = Inputs(
        interactions=planted.interactions,
        users=users,
        affinities=planted.affinities,
        catalog=planted.catalog.fillna({"category": "unknown"}),
        popularity=planted.interactions.groupBy("item_id").count(),
        exclude=planted.interactions.select("user_id", "item_id"),
    )
    cache = (tmp_path / "cache").as_uri()
    fitted = fit_sources(spark, inp, params, None, cache_dir=cache)
    assert set(fitted.candidates) == {"popularity", "twotower"}
    per_user = {
        r.user_id: r.n
        for r in fitted.candidates["twotower"].groupBy("user_id").count().toDF("user_id", "n")
        .collect()
    }  # fmt: skip
    # Every user is scored against all 40 items: n = min(candidates, items).
    assert per_user == dict.fromkeys(planted.train, min(params.candidates, 2 * GROUP_ITEMS))
    hybrid = final_lists(inp, fitted, params, 3, sources=False)["hybrid"].collect()
    assert {r.user_id for r in hybrid} == set(planted.train)
    assert {r.source for r in hybrid} == {"twotower"}
    # Already-bought items are excluded by the rules.
    assert all(r.item_id not in planted.train[r.user_id] for r in hybrid)
    assert fitted.cached and fitted.cached[0].is_cached
    release(fitted)
    assert not fitted.cached[0].is_cached
