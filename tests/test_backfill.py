"""``backfill``: the daily chain day after day on daily file deliveries; a re-run skips what
is unchanged and changes nothing; a change in one day's partition re-runs the days that can see
it; a failure stops at its day and names the command that resumes."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from shopperlake import backfill
from shopperlake.core.lake import Lake
from shopperlake.jobs import run
from tests.conftest import TEST_SETS, job_args, split_by_day

START, DAYS = dt.date(2024, 1, 1), 40
DAY1, DAY2 = dt.date(2024, 2, 8), dt.date(2024, 2, 9)  # the generated period's last two days


def outcome(text: str) -> dict[str, str]:
    """``{"<day> <task>": "ran" | "skipped" | "failed"}`` from the backfill's lines."""
    out = {}
    for line in text.splitlines():
        if ": " in line and line[:4].isdigit():
            name, rest = line.split(": ", 1)
            out[name] = rest.split()[0]
    return out


def test_backfill_runs_skips_reruns_and_resumes(
    spark: SparkSession, lake: Lake, lake_root: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    raw, days = tmp_path / "generated", tmp_path / "raw"
    gen = ["--users", "300", "--items", "80", "--days", str(DAYS), "--seed", "11",
           "--start-date", str(START), "--output", str(raw),
           "--set=generate.malformed_rate=0.0"]  # fmt: skip
    assert run("generate", job_args(lake_root, *gen), spark) == 0
    by_user = split_by_day(raw, days, [DAY1, DAY2])
    history = ["--source", "synthetic", "--input", str(days / "history"),
               "--as-of", str(DAY1 - dt.timedelta(days=1))]  # fmt: skip
    assert run("ingest", job_args(lake_root, *history), spark) == 0
    args = ["--from", str(DAY1), "--to", str(DAY2), "--source", "synthetic",
            "--input", str(days / "{{ ds }}"), "--jobs", "ingest,build_profiles",
            "--lake", lake_root, *TEST_SETS]  # fmt: skip
    capsys.readouterr()

    assert backfill.main(args, spark) == 0
    first = outcome(capsys.readouterr().out)
    assert first == {f"{d} {t}": "ran" for d in (DAY1, DAY2)
                     for t in ("ingest", "build_profiles")}  # fmt: skip
    events = lake.read("bronze.events")
    for day in (DAY1, DAY2):
        got = Counter(r.user_id for r in events.where(f"event_date = DATE'{day}'").collect())
        assert got == by_user[str(day)]
    # the second day read the first: a user active on DAY1 only was last seen 1 day before
    only_first = set(by_user[str(DAY1)]) - set(by_user[str(DAY2)])
    profiles = lake.read("gold.user_profiles").where(f"as_of_date = DATE'{DAY2}'").collect()
    seen = {r.user_id: r.days_since_last_event for r in profiles}
    assert only_first and {seen[u] for u in only_first if u in seen} == {1}

    # a re-run skips the profiles (nothing they read changed) and changes nothing
    n_events, profiles_version = events.count(), lake.version("gold.user_profiles")
    runs_before = lake.read("meta.runs").count()
    assert backfill.main(args, spark) == 0
    second = outcome(capsys.readouterr().out)
    assert second == {f"{DAY1} ingest": "ran", f"{DAY1} build_profiles": "skipped",
                      f"{DAY2} ingest": "ran", f"{DAY2} build_profiles": "skipped"}  # fmt: skip
    assert lake.read("bronze.events").count() == n_events
    assert lake.version("gold.user_profiles") == profiles_version
    new_runs = lake.read("meta.runs").count() - runs_before
    assert new_runs == 2  # the two ingests

    # an event of DAY2 erased: only DAY2's profiles can see that partition
    victim = next(iter(by_user[str(DAY2)]))
    lake.delete_where("bronze.events", f"event_date = DATE'{DAY2}' AND user_id = '{victim}'")
    assert backfill.main(args, spark) == 0
    third = outcome(capsys.readouterr().out)
    assert third[f"{DAY1} build_profiles"] == "skipped"
    assert third[f"{DAY2} build_profiles"] == "ran"
    # one of DAY1: both days' profiles read it
    victim = next(iter(by_user[str(DAY1)]))
    lake.delete_where("bronze.events", f"event_date = DATE'{DAY1}' AND user_id = '{victim}'")
    assert backfill.main(args, spark) == 0
    fourth = outcome(capsys.readouterr().out)
    assert fourth[f"{DAY1} build_profiles"] == fourth[f"{DAY2} build_profiles"] == "ran"
    # --force runs everything
    assert backfill.main([*args, "--force"], spark) == 0
    assert set(outcome(capsys.readouterr().out).values()) == {"ran"}

    # a day without files stops there and says how to resume
    later = str(DAY2 + dt.timedelta(days=1))
    code = backfill.main([*args[:2], "--to", later, *args[4:]], spark)
    captured = capsys.readouterr()
    assert code != 0
    assert outcome(captured.out)[f"{DAY2} build_profiles"] == "skipped"
    assert f"{later} ingest: failed" in captured.err
    assert f"Resume with: ./submit.sh backfill --from {later} --to {later}" in captured.err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--from", "2024-02-09", "--to", "2024-02-08"], "--to 2024-02-08 is before --from"),
        (["--from", "2024-02-08", "--to", "2024-02-09", "--jobs", "build_profile"],
         "--jobs: unknown task(s) build_profile"),
        (["--from", "2024-02-08", "--to", "2024-02-09"], "--input is required"),
        (["--from", "2024-02-31", "--to", "2024-03-01"], "invalid --from '2024-02-31'"),
    ],
)  # fmt: skip
def test_backfill_bad_arguments_name_the_problem(
    spark: SparkSession, lake_root: str, extra: list[str], message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    code = backfill.main(["--source", "synthetic", "--lake", lake_root, *TEST_SETS, *extra],
                         spark)  # fmt: skip
    assert code == 2
    assert message in capsys.readouterr().err
