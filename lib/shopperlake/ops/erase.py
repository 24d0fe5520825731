"""``erase``: remove users from the lake (a data subject's right to erasure).

``./submit.sh erase --user ID [--user ID ...] [--user-file F] [--request-id REF]`` deletes,
inside one lake transaction (all or nothing):

- every row whose ``user_id`` is one of the ids — or, with ``ingest.pseudonymise_users``, their
  pseudonyms — from every table of the catalog that has a ``user_id`` column (bronze events and
  user history, profiles, segments, training sets, scores, retention targets, recommendations,
  return risk);
- every quarantined record whose raw text holds one of the raw ids as a whole token
  (``bronze.quarantine.raw_record``: a quarantined line has no trusted user column); ids
  shorter than 4 characters are not searched for there (a warning says how many);

then removes the users' rows from the model registry's CSV files (test predictions), lists the
model versions trained on data that held them (to retrain), and appends the request to
``meta.erasures``: its reference, the number of users, the rows deleted per table, those model
versions and when VACUUM may free the old files — never the ids. The ids are also redacted from
the run's ``meta.runs`` parameters.

Deleted rows stay in the files of older table versions until VACUUM removes those files:
``./submit.sh maintain`` after ``vacuum_due`` (``maintenance.vacuum_retention_hours``), or at
once with ``--retention-hours 0 --force``, which ends time travel to earlier versions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import re
import uuid
from collections.abc import Sequence
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shopperlake.core.cli import Job, JobContext
from shopperlake.core.errors import InputError
from shopperlake.core.lake import Lake, sql_literal
from shopperlake.ingest.pseudonymise import pseudo_key, pseudonym
from shopperlake.ops.maintain import maintenance_spec
from shopperlake.training.registry import Registry

log = logging.getLogger(__name__)
QUARANTINE = "bronze.quarantine"
MIN_RAW_ID = 4  # shorter ids are not searched for in quarantined raw records
# table -> the model whose training data it is (besides gold.training_sets' own `model` column)
TRAINING_DATA = {
    "gold.return_training_set": "returns",
    "bronze.events": "recommender",
    "gold.user_sequences": "sasrec",
}


def requested_ids(users: Sequence[str], user_file: str | None) -> list[str]:
    ids = [u.strip() for u in users if u.strip()]
    if user_file:
        path = Path(user_file)
        if not path.is_file():
            raise InputError(f"--user-file {user_file} is not a readable file")
        lines = (line.strip() for line in path.read_text().splitlines())
        ids += [line for line in lines if line and not line.startswith("#")]
    if not ids:
        raise InputError("erase needs the users to erase: --user ID (repeatable) or --user-file F")
    return sorted(set(ids))


def id_forms(ids: Sequence[str], pseudonymised: bool) -> list[str]:
    """The ids as the tables hold them: raw, and their pseudonyms when ingest writes those."""
    if not pseudonymised:
        return list(ids)
    key = pseudo_key()
    return sorted({*ids, *(pseudonym(key, u) for u in ids)})


def searchable(ids: Sequence[str]) -> list[str]:
    """The ids distinctive enough to look for in raw text: ``MIN_RAW_ID`` characters or more
    (a short id like ``1`` is also a quantity in other users' records)."""
    return [i for i in ids if len(i) >= MIN_RAW_ID]


def token_pattern(ids: Sequence[str]) -> str:
    """A Java regex matching any of ``ids`` as a whole token of a raw record (``u1`` in
    ``"user_id":"u1"`` or ``,u1,``, not in ``u10``)."""
    alternatives = "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True))
    return f"(^|[^A-Za-z0-9_])({alternatives})([^A-Za-z0-9_]|$)"


def user_tables(lake: Lake) -> list[str]:
    """Existing catalog tables with a ``user_id`` column."""
    return [
        name
        for name in lake.tables()
        if "user_id" in lake.spec(name).schema.fieldNames() and lake.exists(name)
    ]


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="ID",
        help="a user id to erase, as the source sends it (repeatable)",
    )
    parser.add_argument(
        "--user-file",
        dest="user_file",
        default=None,
        metavar="F",
        help="a file of user ids, one per line ('#' comments)",
    )
    parser.add_argument(
        "--request-id",
        dest="request_id",
        default=None,
        metavar="REF",
        help="the request's reference for meta.erasures (default: a new uuid)",
    )


def body(ctx: JobContext) -> None:
    ids = requested_ids(ctx.args.user, ctx.args.user_file)
    forms = id_forms(ids, bool(ctx.cfg.get("ingest.pseudonymise_users")))
    lake = ctx.lake
    listed = ", ".join(sql_literal(f) for f in forms)
    deleted: dict[str, int] = {}
    trained: set[str] = set()
    for name in user_tables(lake):
        mine = lake.read(name).where(F.col("user_id").isin(forms))
        if name == "gold.training_sets":
            trained |= {r["model"] for r in mine.select("model").distinct().collect()}
        elif name in TRAINING_DATA and mine.limit(1).count():
            trained.add(TRAINING_DATA[name])
        deleted[name] = lake.delete_where(name, f"user_id IN ({listed})")
    distinctive = searchable(ids)
    if lake.exists(QUARANTINE) and distinctive:
        pattern = token_pattern(distinctive)
        deleted[QUARANTINE] = lake.delete_where(
            QUARANTINE, f"raw_record RLIKE {sql_literal(pattern)}"
        )
    registry = Registry.from_config(ctx.cfg, lake.root)
    for model, n in registry.remove_user_rows(forms).items():
        deleted[f"registry/{model}/*.csv"] = n
    retrain = [f"{m}/{v}" for m in sorted(trained) for v in registry.versions(m)]
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    hours = maintenance_spec(ctx.cfg).vacuum_retention_hours
    request_id = ctx.args.request_id or str(uuid.uuid4())
    row = (request_id, now, len(ids), deleted, retrain, now + dt.timedelta(hours=hours),
           ctx.run.run_id)  # fmt: skip
    lake.append(
        "meta.erasures", ctx.spark.createDataFrame([row], lake.spec("meta.erasures").schema)
    )
    ctx.run.rows_written = sum(deleted.values())
    for name, n in deleted.items():
        ctx.run.metrics[f"deleted.{name}"] = float(n)
    lines = [f"erase request {request_id}: {len(ids)} user(s)"]
    if len(distinctive) < len(ids):
        lines.append(
            f"  warning: {len(ids) - len(distinctive)} id(s) shorter than {MIN_RAW_ID} "
            f"characters were not searched for in {QUARANTINE}.raw_record (they would match "
            "other records' numbers): check those records by hand"
        )
    lines += [f"  {name:<32}{n:>9,} rows deleted" for name, n in deleted.items()]
    lines.append(
        "  model versions trained on their data (retrain): " + (", ".join(retrain) or "none")
    )
    lines.append(
        f"  older table versions keep the rows until VACUUM: ./submit.sh maintain after "
        f"{row[5]:%Y-%m-%d %H:%M} UTC (or --retention-hours 0 --force now)"
    )
    print("\n".join(lines))


ERASE = Job(
    name="erase",
    description="Erase users: delete their rows from every table with user rows and from "
    "quarantined records and registry files; log the request without the ids.",
    add_args=add_args,
    body=body,
    reads=("*",),
    writes=("*",),
    redact=("user", "user_file"),
)


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    return ERASE.main(argv, spark)
