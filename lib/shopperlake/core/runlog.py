"""The run log: every job appends one row to ``meta.runs``, on success and on failure."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyspark.sql import Row

from shopperlake.core.lake import Lake
from shopperlake.core.schemas import QUALITY_CHECKS, RUNS

if TYPE_CHECKING:
    from shopperlake.core.quality import CheckResult

log = logging.getLogger(__name__)


def new_run_id(job: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{job}-{stamp}-{uuid.uuid4().hex[:8]}"


@dataclass
class RunRecorder:
    """Collects what a job read, wrote and counted; :meth:`finish` appends it to meta.runs."""

    job: str
    params: dict[str, Any]
    env: str = "local"
    as_of: dt.date | None = None
    run_id: str = ""
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    rows_read: int | None = None
    rows_written: int | None = None
    rows_duplicate: int | None = None
    rows_quarantined: int | None = None
    inputs: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    quality: list[CheckResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.run_id:
            self.run_id = new_run_id(self.job)

    def record_input(self, table: str, version: int | None) -> None:
        if version is not None and table != "meta.runs":
            self.inputs.setdefault(table, version)

    def record_output(self, table: str, version: int | None) -> None:
        if version is not None and table != "meta.runs":
            self.outputs[table] = version

    def finish(self, lake: Lake, status: str, error: str | None = None) -> None:
        finished = dt.datetime.now(dt.UTC)
        row = Row(
            run_id=self.run_id,
            job=self.job,
            env=self.env,
            params=json.dumps(self.params, sort_keys=True, default=str),
            as_of=self.as_of,
            started_at=self.started_at,
            finished_at=finished,
            status=status,
            rows_read=self.rows_read,
            rows_written=self.rows_written,
            rows_duplicate=self.rows_duplicate,
            rows_quarantined=self.rows_quarantined,
            inputs=self.inputs,
            outputs=self.outputs,
            metrics=self.metrics,
            error=error,
            run_date=self.started_at.date(),
        )
        checks = [
            Row(
                run_id=self.run_id,
                job=self.job,
                as_of=self.as_of,
                table_name=r.table,
                check=r.check,
                level=r.level,
                status=r.status,
                observed=r.observed,
                expected=r.expected,
                scope=r.scope,
                checked_at=finished,
                run_date=self.started_at.date(),
            )
            for r in self.quality
        ]
        saved, lake.lineage = lake.lineage, None
        try:
            if checks:
                lake.append(
                    "meta.quality_checks", lake.spark.createDataFrame(checks, QUALITY_CHECKS)
                )
            lake.append("meta.runs", lake.spark.createDataFrame([row], RUNS))
        finally:
            lake.lineage = saved
        log.info(
            "run %s %s: read=%s written=%s duplicate=%s quarantined=%s",
            self.run_id,
            status,
            self.rows_read,
            self.rows_written,
            self.rows_duplicate,
            self.rows_quarantined,
        )
