"""At scale (``make test-slow``, marker ``slow``): the synthetic clickstream of the README
(100k users x 10k items x 180 days, about 10 M events) through ingest, profiles and scoring,
each checked against a computation that does not use the code under test.

- ingest accounting: raw lines counted with plain Python, malformed and invalid lines and
  duplicates classified by DuckDB over the raw files (rules as the README states them);
- profiles: frequency, monetary_total, recency and more for every user, recomputed by DuckDB
  from the raw files;
- scoring: every user of the profile snapshot gets a churn score and K distinct
  recommendations.

Scale: ``SHOPPERLAKE_SLOW_USERS`` (100000), ``SHOPPERLAKE_SLOW_ITEMS`` (10000),
``SHOPPERLAKE_SLOW_DAYS`` (180), e.g. ``SHOPPERLAKE_SLOW_USERS=2000
SHOPPERLAKE_SLOW_ITEMS=500 pytest -m slow tests/test_slow.py`` for a quick run.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from shopperlake.churn.score import main as score
from shopperlake.churn.train import main as train
from shopperlake.churn.training_set import main as build_training_set
from shopperlake.core.lake import Lake, load_catalog
from shopperlake.ingest.job import main as ingest
from shopperlake.jobs import run
from shopperlake.profiles.job import main as build_profiles
from shopperlake.synthetic.generate import main as generate
from tests.conftest import job_args

pytestmark = pytest.mark.slow

USERS = int(os.environ.get("SHOPPERLAKE_SLOW_USERS", "100000"))
ITEMS = int(os.environ.get("SHOPPERLAKE_SLOW_ITEMS", "10000"))
DAYS = int(os.environ.get("SHOPPERLAKE_SLOW_DAYS", "180"))
START = dt.date(2024, 1, 1)
AS_OF = START + dt.timedelta(days=DAYS - 1)  # the last generated day
K = 10
EVENT_TYPES = ("view", "click", "search", "add_to_cart", "remove_from_cart", "purchase",
               "return", "review")  # fmt: skip
ITEM_EVENTS = ("view", "click", "add_to_cart", "remove_from_cart")


@dataclass
class World:
    root: str
    raw: Path
    lake: Lake
    db: duckdb.DuckDBPyConnection


def _files(folder: Path) -> list[Path]:
    """The data files Spark reads in a folder (no hidden or underscore files)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name[0] not in "._")


def _count_lines(files: list[Path]) -> int:
    total = 0
    for path in files:
        with path.open("rb") as handle:
            total += sum(1 for _ in handle)
    return total


@pytest.fixture(scope="module")
def world(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Generate, copy one event file a second time (duplicates), ingest, build profiles; load
    the raw event lines into DuckDB and classify them there."""
    base = tmp_path_factory.mktemp("slow")
    root, raw = str(base / "lake"), base / "raw"
    gen = ["--users", str(USERS), "--items", str(ITEMS), "--days", str(DAYS), "--seed", "42",
           "--start-date", START.isoformat(), "--output", str(raw)]  # fmt: skip
    assert generate(job_args(root, *gen)) == 0
    first = _files(raw / "events")[0]
    shutil.copyfile(first, raw / "events" / f"copy-{first.name}")
    assert ingest(job_args(root, "--source", "synthetic", "--input", str(raw), "--as-of",
                           AS_OF.isoformat())) == 0  # fmt: skip
    assert build_profiles(job_args(root, "--as-of", AS_OF.isoformat())) == 0
    db = duckdb.connect(str(base / "check.duckdb"))
    db.execute("SET preserve_insertion_order = false")
    files = [str(p) for p in _files(raw / "events")]
    # One VARCHAR column per line: no delimiter or quote occurs in the JSON lines.
    db.execute(
        "CREATE TABLE lines AS SELECT line FROM read_csv($files, columns = {'line': 'VARCHAR'}, "
        "delim = $delim, quote = '', escape = '', header = false, auto_detect = false)",
        {"files": files, "delim": "\x01"},
    )
    db.execute(CLASSIFY, {"max_ts": dt.datetime.combine(AS_OF, dt.time()) + dt.timedelta(days=2)})
    yield World(root, raw, Lake(spark, root, load_catalog()), db)
    db.close()


# Each raw event line with its canonical fields and whether the README's ingest rules reject
# it (written independently of lib/shopperlake/ingest, for what the generator can produce).
CLASSIFY = f"""
CREATE TABLE events AS
WITH parsed AS (
  SELECT line,
    CASE WHEN json_valid(line) THEN json_type(line) = 'OBJECT' ELSE false END AS ok
  FROM lines
), objects AS (
  SELECT ok, CASE WHEN ok THEN line END AS j FROM parsed
), fields AS (
  SELECT ok,
    nullif(trim(j ->> '$.event_id'), '') AS event_id,
    nullif(trim(j ->> '$.user_id'), '') AS user_id,
    nullif(trim(j ->> '$.session_id'), '') AS session_id,
    nullif(trim(j ->> '$.ts'), '') AS ts_raw,
    lower(nullif(trim(j ->> '$.event_type'), '')) AS event_type,
    nullif(trim(j ->> '$.item_id'), '') AS item_id,
    nullif(trim(j ->> '$.order_id'), '') AS order_id,
    nullif(trim(j ->> '$.price'), '') AS price_raw,
    nullif(trim(j ->> '$.quantity'), '') AS quantity_raw,
    nullif(trim(j ->> '$.rating'), '') AS rating_raw
  FROM objects
), typed AS (
  SELECT *,
    try_strptime(ts_raw, '%Y-%m-%dT%H:%M:%SZ') AS ts,
    try_cast(price_raw AS DOUBLE) AS price,
    try_cast(quantity_raw AS DOUBLE) AS quantity,
    try_cast(rating_raw AS DOUBLE) AS rating
  FROM fields
)
SELECT *, NOT ok
  OR event_id IS NULL OR user_id IS NULL OR ts_raw IS NULL OR event_type IS NULL
  OR ts IS NULL OR ts < TIMESTAMP '1990-01-01' OR ts >= $max_ts
  OR event_type NOT IN {EVENT_TYPES}
  OR (event_type IN {ITEM_EVENTS} AND item_id IS NULL)
  OR (price_raw IS NOT NULL AND (price IS NULL OR isnan(price) OR price < 0 OR price > 100000))
  OR (quantity_raw IS NOT NULL
      AND (quantity IS NULL OR quantity <> floor(quantity) OR quantity <= 0 OR quantity > 1000))
  OR (rating_raw IS NOT NULL
      AND (rating IS NULL OR rating <> floor(rating) OR rating < 1 OR rating > 5))
  AS rejected
FROM typed
"""


def _one(db: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = db.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_ingest_accounts_for_every_raw_line(world: World) -> None:
    db = world.db
    lines = _count_lines(_files(world.raw / "events"))  # plain Python: every line read
    assert _one(db, "SELECT count(*) FROM events") == lines
    rejected = _one(db, "SELECT count(*) FROM events WHERE rejected")
    not_json = _one(db, "SELECT count(*) FROM events WHERE NOT ok")
    valid = lines - rejected
    distinct = _one(db, "SELECT count(DISTINCT event_id) FROM events WHERE NOT rejected")
    assert not_json > 0 and rejected > not_json  # the generator's malformed lines are there
    assert valid > distinct  # the copied file: its valid lines are duplicates

    runs = world.lake.read("meta.runs").where("job = 'ingest' AND status = 'success'")
    run = runs.collect()
    assert len(run) == 1
    m = run[0]["metrics"]
    got = {k: int(m[f"events.rows_{k}"]) for k in ("read", "written", "duplicate", "quarantined")}
    want = {"read": lines, "written": distinct, "duplicate": valid - distinct,
            "quarantined": rejected}  # fmt: skip
    assert got == want
    assert world.lake.read("bronze.events").count() == distinct
    quarantine = world.lake.read("bronze.quarantine").where("entity = 'events'")
    assert quarantine.count() == rejected
    assert quarantine.where("reason = 'malformed_record'").count() == not_json
    for entity, key in (("items", "item_id"), ("users", "user_id")):
        entity_lines = _count_lines(_files(world.raw / entity))
        assert int(m[f"{entity}.rows_read"]) == entity_lines
        assert world.lake.read(f"bronze.{entity}").select(key).distinct().count() == entity_lines
    total = int(run[0]["rows_read"])
    assert total == int(run[0]["rows_written"]) + int(run[0]["rows_duplicate"]) + int(
        run[0]["rows_quarantined"]
    )


# Profile columns recomputed from the raw lines (valid, one per event id): orders are the
# distinct coalesce(order_id, event_id) of purchases, an order's day its first purchase day and
# its value the sum of its lines' price * coalesce(quantity, 1), each rounded to cents.
PROFILES = """
WITH ev AS (
  SELECT * FROM events WHERE NOT rejected AND ts < $end
  QUALIFY row_number() OVER (PARTITION BY event_id) = 1  -- duplicates are identical lines
), orders AS (
  SELECT user_id, coalesce(order_id, event_id) AS order_key, min(CAST(ts AS DATE)) AS day,
         sum(round(price * coalesce(quantity, 1), 2)) AS value
  FROM ev WHERE event_type = 'purchase' GROUP BY ALL
), per_order AS (
  SELECT user_id, count(*) AS frequency, round(coalesce(sum(value), 0), 2) AS monetary_total,
         count(DISTINCT day) AS purchase_days, max(day) AS last_purchase
  FROM orders GROUP BY user_id
), per_event AS (
  SELECT user_id, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS events,
         count(DISTINCT session_id) AS sessions,
         count(*) FILTER (WHERE event_type = 'review') AS review_count,
         avg(rating) FILTER (WHERE event_type = 'review') AS avg_rating
  FROM ev GROUP BY user_id
)
SELECT e.user_id,
  datediff('day', CAST(e.first_ts AS DATE), $as_of) AS tenure_days,
  datediff('day', CAST(e.last_ts AS DATE), $as_of) AS days_since_last_event,
  coalesce(o.frequency, 0) AS frequency,
  coalesce(o.monetary_total, 0.0) AS monetary_total,
  datediff('day', o.last_purchase, $as_of) AS recency_days,
  coalesce(o.purchase_days, 0) AS purchase_days,
  e.events, e.sessions, e.review_count, e.avg_rating
FROM per_event e LEFT JOIN per_order o USING (user_id)
"""


def test_profiles_match_an_independent_duckdb_computation(world: World) -> None:
    want: pd.DataFrame = world.db.execute(
        PROFILES, {"as_of": AS_OF, "end": dt.datetime.combine(AS_OF, dt.time()) + dt.timedelta(1)}
    ).df()
    got: pd.DataFrame = (
        world.lake.read("gold.user_profiles")
        .where(F.col("as_of_date") == F.lit(AS_OF))
        .select(
            "user_id",
            "tenure_days",
            "days_since_last_event",
            "frequency",
            "monetary_total",
            "recency_days",
            "purchase_days",
            F.col("activity")["all"]["events"].alias("events"),
            "sessions",
            "review_count",
            "avg_rating",
        )  # fmt: skip
        .toPandas()
    )
    assert len(got) == len(want) > USERS // 2
    both = got.merge(want, on="user_id", how="outer", suffixes=("", "_ref"), indicator=True)
    assert (both["_merge"] == "both").all(), both[both["_merge"] != "both"].head()
    exact = ["tenure_days", "days_since_last_event", "frequency", "recency_days",
             "purchase_days", "events", "sessions", "review_count"]  # fmt: skip
    for col in exact:
        a, b = both[col].astype("Float64"), both[f"{col}_ref"].astype("Float64")
        differ = ~((a == b).fillna(False) | (a.isna() & b.isna()))
        assert not differ.any(), (col, both.loc[differ, ["user_id", col, f"{col}_ref"]].head())
    for col, tol in (("monetary_total", 0.005), ("avg_rating", 1e-6)):
        a, b = both[col].astype(float), both[f"{col}_ref"].astype(float)
        differ = ~(((a - b).abs() <= tol) | (a.isna() & b.isna()))
        assert not differ.any(), (col, both.loc[differ, ["user_id", col, f"{col}_ref"]].head())


CHURN = ["--set", "models.churn.dnn.epochs=3", "--set", "models.churn.gbt_max_iter=10"]


@pytest.mark.training
def test_churn_scores_every_user_of_the_snapshot(world: World) -> None:
    root, as_of = world.root, AS_OF.isoformat()
    assert build_training_set(job_args(root, "--model", "churn", "--as-of", as_of, *CHURN)) == 0
    assert train(job_args(root, "--model", "churn", *CHURN)) == 0
    assert score(job_args(root, "--model", "churn", "--as-of", as_of, *CHURN)) == 0
    snapshot = world.lake.read("gold.user_profiles").where(F.col("as_of_date") == F.lit(AS_OF))
    scores = world.lake.read("gold.churn_scores").where(F.col("as_of_date") == F.lit(AS_OF))
    assertDataFrameEqual(scores.select("user_id"), snapshot.select("user_id"))
    assert scores.where("score IS NULL OR score < 0 OR score > 1").count() == 0


REC = ["--set", "recommender.blend.mode=weights", "--set", "recommender.blend.als=0.0"]


def test_recommender_gives_every_user_of_the_snapshot_k_distinct_items(world: World) -> None:
    root, as_of = world.root, AS_OF.isoformat()
    assert run("train_recommender", job_args(root, "--as-of", as_of, *REC)) == 0
    assert run("score_recommender", job_args(root, "--as-of", as_of, *REC)) == 0
    snapshot = world.lake.read("gold.user_profiles").where(F.col("as_of_date") == F.lit(AS_OF))
    recs = world.lake.read("gold.recommendations").where(F.col("as_of_date") == F.lit(AS_OF))
    per_user = recs.groupBy("user_id").agg(
        F.countDistinct("item_id").alias("items"), F.count(F.lit(1)).alias("n")
    )
    assertDataFrameEqual(
        per_user,
        snapshot.select(
            "user_id", F.lit(K).cast("long").alias("items"), F.lit(K).cast("long").alias("n")
        ),  # fmt: skip
    )
