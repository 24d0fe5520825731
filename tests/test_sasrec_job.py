"""``train --model sasrec`` and ``score --model sasrec`` end to end on a hand-built
``gold.user_sequences``: Horovod with 2 processes, Petastorm, the registry, gold.model_metrics,
gold.next_item_recommendations; the popularity baseline's figures recomputed here from the
rows alone; a run without sequences fails and leaves no version behind. Trained with the
sampled softmax (8 shared negatives of the 24 items, logQ-corrected).

Planted order: 24 items in 3 categories of 8; every user walks one category in item order
(cyclic) from a random start, 5..7 distinct items, so the next item is always the successor of the
last one (an order-free model sees only which items the user met).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shopperlake.core.lake import Lake
from shopperlake.core.schemas import USER_SEQUENCES
from shopperlake.jobs import run
from shopperlake.training.registry import Registry
from tests.conftest import job_args
from tests.test_rec_sasrec_source import item, walks  # the same category walks
from tests.test_report import render

pytestmark = pytest.mark.training
AS_OF = dt.date(2024, 3, 1)
SMALL = [
    "--set=sequences.sasrec.dim=16", "--set=sequences.sasrec.blocks=1",
    "--set=sequences.sasrec.heads=1", "--set=sequences.sasrec.max_len=12",
    "--set=sequences.sasrec.epochs=30", "--set=sequences.sasrec.batch_size=32",
    "--set=sequences.sasrec.learning_rate=0.005", "--set=sequences.sasrec.dropout=0.0",
    "--set=sequences.sasrec.top_n=5", "--set=evaluation.bootstrap.resamples=50",
    # the sampled softmax under Horovod (the full one runs in test_rec_sasrec_source)
    "--set=sequences.sasrec.negatives=8",
]  # fmt: skip


def popularity_by_hand(seqs: dict[str, list[str]], k: int) -> tuple[float, float, dict[str, int]]:
    """HR@k, NDCG@k and each user's 0-based rank of popularity on the test targets: counts
    over the training steps (all but each user's last two), history removed, ties to the
    lower item id."""
    counts: dict[str, int] = {}
    for s in seqs.values():
        for x in s[:-2]:
            counts[x] = counts.get(x, 0) + 1
    catalogue = sorted({x for s in seqs.values() for x in s})
    hits, gains, ranks = [], [], {}
    for user, s in seqs.items():
        history, target = set(s[:-1]), s[-1]
        ranked = sorted((x for x in catalogue if x not in history),
                        key=lambda x: (-counts.get(x, 0), x))  # fmt: skip
        rank = ranked.index(target)
        ranks[user] = rank
        hits.append(rank < k)
        gains.append(1 / math.log2(rank + 2) if rank < k else 0.0)
    return float(np.mean(hits)), float(np.mean(gains)), ranks


def test_train_score_and_a_failed_run(
    spark: SparkSession, lake: Lake, lake_root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seqs = walks()
    ts = dt.datetime(2024, 2, 29, 12, 0)
    rows = [
        (u, AS_OF, len(s), s, ["view"] * len(s), [x[:2] for x in s], [60] * len(s),
         list(range(1, len(s) + 1)), ts, len(s))
        for u, s in seqs.items()
    ]  # fmt: skip
    # two users with fewer than 3 distinct items: out of the evaluation, counted; scored
    short = {"s1": [item(0, 0), item(0, 0)], "s2": [item(1, 3), item(1, 4)]}
    rows += [
        (u, AS_OF, len(s), s, ["view"] * len(s), [x[:2] for x in s], [60] * len(s),
         list(range(1, len(s) + 1)), ts, len(s))
        for u, s in short.items()
    ]  # fmt: skip
    lake.append("gold.user_sequences", spark.createDataFrame(rows, USER_SEQUENCES))

    args = job_args(lake_root, "--as-of", str(AS_OF), *SMALL)
    assert run("train", ["--model", "sasrec", *args], spark=spark) == 0
    last = lake.read("meta.runs").orderBy(F.col("started_at").desc()).first()
    assert last is not None and last.metrics["users_too_few_steps"] == 2.0
    assert last.rows_read == len(seqs)
    metrics = {
        (r.algorithm, r.metric, r.reference): r
        for r in lake.read("gold.model_metrics").where("model = 'sasrec'").collect()
    }
    for algo in ("sasrec", "ease", "popularity"):
        for m in ("hr@10", "ndcg@10"):
            row = metrics[(algo, m, None)]
            assert row.split == "loo_test" and row.ci_low <= row.value <= row.ci_high
    for ref in ("ease", "popularity"):
        assert ("sasrec", "hr@10", ref) in metrics
    hr, ndcg, pop_ranks = popularity_by_hand(seqs, 10)
    assert metrics[("popularity", "hr@10", None)].value == pytest.approx(hr)
    assert metrics[("popularity", "ndcg@10", None)].value == pytest.approx(ndcg)
    # the walk is learnt: the next item is the successor of the last one
    assert metrics[("sasrec", "hr@10", None)].value >= 0.8
    # the per-user ranks behind the figures, kept with the version
    ranks = pd.read_parquet(Path(lake_root) / "models" / "sasrec" / "v0001" / "loo_ranks.parquet")
    assert set(ranks["algorithm"]) == {"sasrec", "ease", "popularity"}
    assert set(ranks["split"]) == {"validation", "test"}
    popular = ranks[(ranks["split"] == "test") & (ranks["algorithm"] == "popularity")]
    assert dict(zip(popular["user_id"], popular["rank"].astype(int), strict=True)) == pop_ranks

    assert run("score", ["--model", "sasrec", *args], spark=spark) == 0
    recs = lake.read("gold.next_item_recommendations").where(F.col("as_of_date") == AS_OF)
    got: dict[str, list[str]] = {}
    for r in recs.orderBy("user_id", "rank").collect():
        got.setdefault(r.user_id, []).append(r.item_id)
        assert r.model_version == "v0001"
    histories = {**seqs, **short}
    assert set(got) == set(histories) and all(len(v) == 5 for v in got.values())
    assert all(not set(v) & set(histories[u]) for u, v in got.items())  # seen items removed
    successor_first = [
        got[u][0] == item(int(s[-1][1]), int(s[-1][2:]) + 1) for u, s in seqs.items()
    ]
    assert np.mean(successor_first) >= 0.8
    # the report's section: figures, paired differences and example lists, rendered in Chromium
    out = Path(lake_root).parent / "reports"
    assert run("report", job_args(lake_root, "--as-of", str(AS_OF), "--output", str(out))) == 0
    seen = render(out / str(AS_OF) / "report.html")
    section = {x["id"]: x for x in seen["sections"]}["sequences"]
    assert section["missing"] == [] and section["tables"] == 3
    assert seen["console_errors"] == []
    before = recs.count()
    assert run("score", ["--model", "sasrec", *args], spark=spark) == 0
    again = lake.read("gold.next_item_recommendations").where(F.col("as_of_date") == AS_OF)
    assert again.count() == before

    # no sequences on that day: a clear failure, no version left behind
    registry = Registry(Path(lake_root) / "models")
    assert registry.versions("sasrec") == ["v0001"] and registry.current("sasrec") == "v0001"
    bad = job_args(lake_root, "--as-of", "2024-01-01", *SMALL)
    capsys.readouterr()
    assert run("train", ["--model", "sasrec", *bad], spark=spark) != 0
    message = capsys.readouterr().err
    assert "gold.user_sequences as of 2024-01-01 has 0 users" in message
    assert "build_sequences --as-of 2024-01-01" in message
    # a catalogue above the configured limit: named, before anything is trained or registered
    n_items = len({x for s in seqs.values() for x in s})
    limited = [*args, "--set=sequences.sasrec.max_items=10", "--set=sequences.sasrec.negatives=0"]
    assert run("train", ["--model", "sasrec", *limited], spark=spark) != 0
    message = capsys.readouterr().err
    assert f"has {n_items:,} distinct items" in message
    assert "sequences.sasrec.max_items (10)" in message
    no_lambdas = [*args, "--set=recommender.ease.lambdas=[]"]
    assert run("train", ["--model", "sasrec", *no_lambdas], spark=spark) != 0
    assert "recommender.ease.lambdas is empty" in capsys.readouterr().err
    assert registry.versions("sasrec") == ["v0001"]
