"""The recommender's ``sasrec`` source through ``fit_sources`` / ``final_lists``, as train and
score use it: SASRec trained with Horovod (2 processes, Petastorm-fed) on the order of each
user's events before the cutoff.

Planted order: 3 categories of 8 items; each user views a walk of 5..7 consecutive items of one
category (item k, then k + 1, cyclic), one a minute. The next item after a walk is the successor
of its last item, which no bag of items can tell from its predecessor. Two more users: one with
a single event (gets candidates), one with no events before the cutoff (gets none from this
source; served by the popularity fill).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from shopperlake.core.config import load_config
from shopperlake.core.errors import ConfigError
from shopperlake.rec.params import RecParams
from shopperlake.rec.pipeline import Inputs, final_lists, fit_sources, release
from shopperlake.seqmodel.build import user_sequences

pytestmark = pytest.mark.training
CATS, PER_CAT, USERS = 3, 8, 150
CUTOFF = dt.date(2024, 2, 29)
MODEL = {
    "max_len": 12, "dim": 16, "blocks": 1, "heads": 1, "dropout": 0.0, "epochs": 30,
    "batch_size": 32, "learning_rate": 0.005, "num_proc": 2, "seed": 7, "max_items": 1000,
}  # fmt: skip
EVENTS = (
    "user_id STRING, event_id STRING, ts TIMESTAMP, event_type STRING, item_id STRING, "
    "category STRING, event_date DATE"
)


def item(c: int, k: int) -> str:
    return f"i{c}{k % PER_CAT:02d}"


def walks() -> dict[str, list[str]]:
    rng = np.random.default_rng(5)
    out = {}
    for u in range(USERS):
        c, start, n = (int(rng.integers(CATS)), int(rng.integers(PER_CAT)),
                       int(rng.integers(5, PER_CAT)))  # fmt: skip
        out[f"u{u:03d}"] = [item(c, start + k) for k in range(n)]
    return out


def events_of(spark: SparkSession, histories: dict[str, list[str]]) -> DataFrame:
    t0 = dt.datetime(2024, 2, 28, 9, 0)
    rows = [
        (u, f"{u}-{k}", t0 + dt.timedelta(minutes=k), "view", x, x[:2], t0.date())
        for u, s in histories.items()
        for k, x in enumerate(s)
    ]
    # an event after the cutoff: never read
    rows.append(("u000", "late", dt.datetime(2024, 3, 1, 9), "view", item(2, 7), "i2",
                 dt.date(2024, 3, 1)))  # fmt: skip
    return spark.createDataFrame(rows, EVENTS)


def test_sasrec_source_learns_the_order_and_feeds_the_hybrid(
    spark: SparkSession, tmp_path: Path
) -> None:
    seqs = walks()
    histories = {**seqs, "one": [item(0, 3)]}
    events = events_of(spark, histories)
    base = RecParams.from_config(load_config("local").section("recommender"))
    params = dataclasses.replace(
        base.with_blend({"sasrec": 1.0, "popularity": 0.3}), sasrec={**MODEL, "keep_seen": False}
    )
    user_ids = [*histories, "cold"]
    users = spark.createDataFrame([(u, None) for u in user_ids], "user_id STRING, segment STRING")
    interactions = events.where(F.col("event_date") <= CUTOFF).select(
        "user_id", "item_id", F.lit(1.0).alias("weight")
    )
    catalog = spark.createDataFrame(
        [(item(c, k), f"i{c}", 1.0) for c in range(CATS) for k in range(PER_CAT)],
        "item_id STRING, category STRING, price DOUBLE",
    )
    inp = Inputs(
        interactions=interactions,
        users=users,
        affinities=spark.createDataFrame(
            [], "user_id STRING, category STRING, share DOUBLE, " "user_band STRING"
        ),  # fmt: skip
        catalog=catalog,
        popularity=interactions.groupBy("item_id").count(),
        exclude=None,
        sequences=user_sequences(events, CUTOFF, 50, ["view"], 1),
    )
    fitted = fit_sources(spark, inp, params, None, cache_dir=(tmp_path / "cache").as_uri())
    assert set(fitted.candidates) == {"popularity", "sasrec"}
    got: dict[str, list[str]] = {}
    for r in fitted.candidates["sasrec"].collect():
        got.setdefault(r.user_id, []).append((r.score, r.item_id))
    ranked = {u: [x for _, x in sorted(v, key=lambda t: (-t[0], t[1]))] for u, v in got.items()}
    # every user with a known item step, nobody else; the late event is not in the history
    assert set(ranked) == set(histories)
    # every item of the training vocabulary (all 24 are walked) except the history
    n_items = len({x for s in seqs.values() for x in s})
    assert n_items == CATS * PER_CAT
    for u, lst in ranked.items():
        assert not set(lst) & set(histories[u])
        assert len(lst) == min(params.candidates, n_items - len(set(histories[u])))
    successor_first = [ranked[u][0] == item(int(s[-1][1]), int(s[-1][2:]) + 1)
                       for u, s in seqs.items()]  # fmt: skip
    assert np.mean(successor_first) >= 0.8

    lists = final_lists(inp, fitted, params, 3, sources=False, ablate=("sasrec", "twotower"))
    assert set(lists) == {"hybrid", "hybrid_without_sasrec"}  # twotower: not in the blend
    hybrid = lists["hybrid"].orderBy("user_id", "rank").collect()
    assert {r.user_id for r in hybrid} == set(user_ids)
    by_user: dict[str, list[str]] = {}
    for r in hybrid:
        by_user.setdefault(r.user_id, []).append(r.source)
    # the walkers' lists lead with SASRec's next items: rank 1 of SASRec (1/11) outweighs
    # rank 1 of popularity (0.3/11)
    assert all(by_user[u][0] == "sasrec" for u in seqs)
    assert "sasrec" not in by_user["cold"]  # served by popularity
    without = lists["hybrid_without_sasrec"].collect()
    assert {r.user_id for r in without} == set(user_ids)
    assert "sasrec" not in {r.source for r in without}
    release(fitted)

    # a protocol without order cannot weight the source
    no_order = dataclasses.replace(inp, sequences=None)
    with pytest.raises(ConfigError, match="needs ordered events"):
        fit_sources(spark, no_order, params, None, cache_dir=(tmp_path / "c2").as_uri())


def test_a_bad_sasrec_section_stops_the_config() -> None:
    section = load_config("local").section("recommender")
    section["blend"]["sasrec"] = 1.0
    section["sasrec"] = {**MODEL, "heads": 3}
    with pytest.raises(ConfigError, match=r"recommender.sasrec: dim \(16\) must be a multiple"):
        RecParams.from_config(section)
    section["sasrec"] = {**MODEL, "keep_seen": "yes"}
    with pytest.raises(ConfigError, match="recommender.sasrec.keep_seen must be true or false"):
        RecParams.from_config(section)
    section["sasrec"] = {**MODEL, "steps": "orders"}
    with pytest.raises(ConfigError, match="recommender.sasrec.steps must be distinct or events"):
        RecParams.from_config(section)
