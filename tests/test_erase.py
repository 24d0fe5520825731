"""``erase`` on a real lake built by the ingest job: a user's rows leave every table, the
quarantine, the registry's CSV files and — after VACUUM — the Parquet files themselves, while
other users (``cust10`` shares a prefix with ``cust1``) keep theirs; the request is logged without
the id."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from shopperlake.core.lake import Lake
from shopperlake.ingest.job import main as ingest
from shopperlake.ops.erase import id_forms, searchable
from shopperlake.ops.erase import main as erase
from shopperlake.ops.maintain import main as maintain
from tests.conftest import job_args

TOKEN_U1 = re.compile(r"(^|[^A-Za-z0-9_])cust1([^A-Za-z0-9_]|$)")


def shop(spark: SparkSession, lake: Lake, lake_root: str, tmp_path: Path) -> None:
    root = tmp_path / "raw"
    for sub in ("events", "users"):
        (root / sub).mkdir(parents=True)
    owners = {
        "e1": "cust1",
        "e2": "cust1",
        "e3": "cust1",
        "e4": "cust10",
        "e5": "cust10",
        "e6": "cust2",
        "e7": "cust2",
    }
    events = [
        json.dumps({"event_id": e, "user_id": u, "ts": "2024-01-05T13:45:12Z",
                    "event_type": "view", "item_id": "i1", "category": "c1", "price": 1.0})
        for e, u in owners.items()
    ]  # fmt: skip
    # two malformed lines (quarantined whole): one of cust1's, one of cust10's
    events += ['{"event_id": "q1", "user_id": "cust1", "ts": "2024-01',
               '{"event_id": "q2", "user_id": "cust10", "ts": "2024-01']  # fmt: skip
    (root / "events" / "part-0.json").write_text("\n".join(events) + "\n")
    (root / "users" / "part-0.json").write_text("\n".join(
        json.dumps({"user_id": u, "signup_date": "2023-12-01", "country": "DE"})
        for u in ("cust1", "cust10", "cust2")
    ))  # fmt: skip
    args = ["--source", "synthetic", "--input", str(root), "--as-of", "2024-01-31"]
    assert ingest(job_args(lake_root, *args), spark) == 0
    day = dt.date(2024, 1, 31)
    lake.append("gold.recommendations", spark.createDataFrame(
        [("cust1", day, 1, "i2", 0.9, "itemcf", "v1"), ("cust1", day, 2, "i3", 0.5, "itemcf", "v1"),
         ("cust2", day, 1, "i2", 0.8, "itemcf", "v1")],
        "user_id string, as_of_date date, rank int, item_id string, score double, "
        "source string, model_version string",
    ))  # fmt: skip
    lake.append("gold.training_sets", spark.createDataFrame(
        [("churn", day, "cust1", 1, "train", {"x": 1.0}, {}, "r"),
         ("churn", day, "cust2", 0, "train", {"x": 2.0}, {}, "r"),
         ("propensity", day, "cust2", 1, "test", {"x": 2.0}, {}, "r")],
        "model string, cutoff date, user_id string, label int, split string, "
        "numeric map<string,double>, categorical map<string,string>, run_id string",
    ))  # fmt: skip
    # cust1's item steps: SASRec's training data
    lake.append("gold.user_sequences", spark.createDataFrame(
        [("cust1", day, 2, ["i1", "i2"], ["view", "view"], ["c1", "c1"], [0, 60], [1, 2],
          dt.datetime(2024, 1, 5, 13, 46), 2)],
        lake.spec("gold.user_sequences").schema,
    ))  # fmt: skip
    for model in ("churn", "propensity", "recommender", "returns", "sasrec"):
        folder = Path(lake_root) / "models" / model / "v0001"
        folder.mkdir(parents=True)
        (folder / "predictions_test.csv").write_text("user_id,label,dnn\ncust1,1,0.9\ncust2,0,0.1\n"
                                                     "cust10,0,0.2\n" if model == "churn" else
                                                     "user_id,label\ncust2,0\n")  # fmt: skip


def files_holding_cust1(lake_root: str) -> list[str]:
    """Parquet data files under the lake with ``cust1`` as a value (or, in raw text, as a token)
    of a string column, read with pyarrow: what is on disk, whatever the Delta log says."""
    found = []
    for folder, _, names in os.walk(lake_root):
        for name in names:
            if not name.endswith(".parquet") or "_delta_log" in folder:
                continue
            table = pq.read_table(os.path.join(folder, name))
            for column in table.column_names:
                values = table.column(column).to_pylist()
                if any(isinstance(v, str) and TOKEN_U1.search(v) for v in values):
                    found.append(os.path.join(folder, name))
                    break
    return found


def test_erase_removes_the_user_everywhere_and_logs_no_id(
    spark: SparkSession, lake: Lake, lake_root: str, tmp_path: Path
) -> None:
    shop(spark, lake, lake_root, tmp_path)
    assert erase(job_args(lake_root, "--user", "cust1", "--request-id", "REQ-1"), spark) == 0
    ids = lambda t, c: sorted(r[0] for r in lake.read(t).select(c).collect())  # noqa: E731
    assert ids("bronze.events", "event_id") == ["e4", "e5", "e6", "e7"]
    assert ids("bronze.users", "user_id") == ["cust10", "cust2"]
    quarantined = ids("bronze.quarantine", "raw_record")
    assert quarantined == ['{"event_id": "q2", "user_id": "cust10", "ts": "2024-01']
    assert ids("gold.recommendations", "user_id") == ["cust2"]
    assert sorted((r.model, r.user_id) for r in lake.read("gold.training_sets").collect()) == [
        ("churn", "cust2"),
        ("propensity", "cust2"),
    ]
    churn_csv = (Path(lake_root) / "models/churn/v0001/predictions_test.csv").read_text()
    assert churn_csv.splitlines() == ["user_id,label,dnn", "cust2,0,0.1", "cust10,0,0.2"]
    log = lake.read("meta.erasures").collect()
    assert len(log) == 1
    assert (log[0].request_id, log[0].users) == ("REQ-1", 1)
    assert log[0].rows_deleted == {
        "bronze.events": 3, "bronze.users": 1, "bronze.quarantine": 1,
        "gold.recommendations": 2, "gold.training_sets": 1, "registry/churn/*.csv": 1,
        "gold.user_sequences": 1,
    }  # fmt: skip
    # cust1 had churn training rows, events (the recommender's data) and item steps (SASRec's);
    # not propensity's
    assert log[0].models_to_retrain == ["churn/v0001", "recommender/v0001", "sasrec/v0001"]
    assert "cust1" not in json.dumps(log[0].asDict(), default=str).replace("cust10", "")
    run = lake.read("meta.runs").where("job = 'erase'").first()
    assert run is not None and json.loads(run.params)["user"] == "<redacted>"
    # The old versions' files still hold cust1 until VACUUM frees them.
    assert files_holding_cust1(lake_root)
    assert maintain(job_args(lake_root, "--retention-hours", "0", "--force"), spark) == 0
    assert files_holding_cust1(lake_root) == []
    assert ids("bronze.events", "event_id") == ["e4", "e5", "e6", "e7"]
    # A second request for the same user finds nothing left.
    assert erase(job_args(lake_root, "--user", "cust1", "--request-id", "REQ-2"), spark) == 0
    again = lake.read("meta.erasures").where("request_id = 'REQ-2'").first()
    assert again is not None and set(again.rows_deleted.values()) == {0}


def test_erase_needs_users_and_pseudonymised_ids_are_matched(
    spark: SparkSession, lake_root: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    assert erase(job_args(lake_root), spark) != 0
    assert "erase needs the users to erase: --user ID" in capsys.readouterr().err
    secret = "a-test-key-of-some-length"
    monkeypatch.setenv("SHOPPERLAKE_PSEUDO_KEY", secret)
    hashed = hmac.new(secret.encode(), b"cust1", hashlib.sha256).hexdigest()[:32]
    assert id_forms(["cust1"], pseudonymised=True) == sorted(["cust1", hashed])
    assert id_forms(["cust1"], pseudonymised=False) == ["cust1"]
    # "1" is also a quantity in other users' raw records: not searched for there
    assert searchable(["1", "abc", "00001", "cust1"]) == ["00001", "cust1"]
