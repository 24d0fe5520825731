"""Quality gates: per-table expectations from config, checked after a job's writes.

``quality.tables`` in config maps a table to its checks::

    gold.churn_scores:
      - {check: not_null, columns: [user_id, score], level: error}
      - {check: unique, columns: [user_id], level: error}
      - {check: range, column: score, min: 0, max: 1, level: error}
      - {check: row_count_change, min_ratio: 0.5, max_ratio: 2.0, level: warn}

A check looks at the rows the job just wrote: for a table partitioned by a date, the date
partitions the job's commits changed (from the Delta log); otherwise the whole table. After
the job's body, :func:`enforce` checks every table the job wrote; a failed ``error`` check
raises :class:`QualityGateError` inside the job's lake transaction, so every table goes back to
its previous version; a failed ``warn`` check is recorded and the job goes on. Every result
(passed, failed, skipped) goes to ``meta.quality_checks`` with the run id.

Kinds of check: ``not_null`` (columns), ``unique`` (columns: the key within the scope),
``range`` (column, min and/or max; nulls are ``not_null``'s business), ``row_count`` (min
and/or max rows), ``freshness`` (the newest value of a date/timestamp column is at most
``max_age_days`` before the run's ``--as-of``; skipped without one) and ``row_count_change``
(rows written against the previous run's: the latest earlier date partition for a
date-partitioned table, the previous version otherwise; ``min_ratio``/``max_ratio``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from shopperlake.core.errors import ConfigError, ShopperLakeError
from shopperlake.core.lake import Lake

log = logging.getLogger(__name__)

LEVELS = ("error", "warn")
KINDS: dict[str, tuple[set[str], set[str]]] = {
    # kind -> (required keys, optional keys) besides check and level
    "not_null": ({"columns"}, set()),
    "unique": ({"columns"}, set()),
    "range": ({"column"}, {"min", "max"}),
    "row_count": (set(), {"min", "max"}),
    "freshness": ({"column", "max_age_days"}, set()),
    "row_count_change": (set(), {"min_ratio", "max_ratio"}),
}


class QualityGateError(ShopperLakeError):
    """An ``error``-level expectation failed on a table the job wrote: the job is rolled back."""


@dataclass(frozen=True)
class CheckResult:
    table: str
    check: str  # kind and its subject, e.g. "unique(user_id)"
    level: str
    status: str  # pass | fail | skipped
    observed: str
    expected: str
    scope: str

    def line(self) -> str:
        return f"{self.table} {self.check}: {self.observed} (expected {self.expected})"


def parse_checks(table: str, raw: Any) -> list[dict[str, Any]]:
    """Validate one table's checks from config; a typo is a ConfigError naming it."""
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ConfigError(f"quality.tables.{table}: expected a list of checks")
    checks = []
    for i, item in enumerate(raw):
        where = f"quality.tables.{table}[{i}]"
        if not isinstance(item, Mapping) or "check" not in item:
            raise ConfigError(f"{where}: expected a mapping with a 'check' key")
        kind = item["check"]
        if kind not in KINDS:
            raise ConfigError(f"{where}: unknown check '{kind}' (known: {', '.join(KINDS)})")
        level = item.get("level", "error")
        if level not in LEVELS:
            raise ConfigError(f"{where}: level must be error or warn, not '{level}'")
        required, optional = KINDS[kind]
        keys = set(item) - {"check", "level"}
        if required - keys:
            raise ConfigError(f"{where}: {kind} needs {', '.join(sorted(required - keys))}")
        if keys - required - optional:
            raise ConfigError(
                f"{where}: {kind} does not take {', '.join(sorted(keys - required - optional))}"
            )
        if kind in ("range", "row_count") and not keys & {"min", "max"}:
            raise ConfigError(f"{where}: {kind} needs min and/or max")
        checks.append({**item, "level": level})
    return checks


def _label(check: Mapping[str, Any]) -> str:
    kind = check["check"]
    if "columns" in check:
        return f"{kind}({', '.join(check['columns'])})"
    if "column" in check:
        return f"{kind}({check['column']})"
    return kind


def _bounds(check: Mapping[str, Any], lo: str, hi: str) -> str:
    parts = []
    if check.get(lo) is not None:
        parts.append(f">= {check[lo]}")
    if check.get(hi) is not None:
        parts.append(f"<= {check[hi]}")
    return " and ".join(parts)


def _outside(value: float, check: Mapping[str, Any], lo: str, hi: str) -> bool:
    return (check.get(lo) is not None and value < check[lo]) or (
        check.get(hi) is not None and value > check[hi]
    )


def _day(value: Any) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def check_table(
    lake: Lake,
    name: str,
    checks: Sequence[Mapping[str, Any]],
    before: int | None,
    as_of: dt.date | None = None,
) -> list[CheckResult]:
    """Run ``checks`` on what the latest version of ``name`` holds in the scope written since
    version ``before`` (None: the table was created by this run)."""
    spec = lake.spec(name)
    df = lake.read(name)
    dates = {f.name for f in spec.schema.fields if f.dataType.typeName() == "date"}
    part = next((c for c in spec.partition_by if c in dates), None)
    changed = None if before is None else lake.changed_dates_since(name, before)
    written: list[str] = []
    if part is not None and changed is not None and None not in changed:
        written = sorted(d for d in changed if d is not None)
        scoped = df.where(F.col(part).isin([dt.date.fromisoformat(d) for d in written]))
        scope = (
            "nothing written" if not written
            else f"{part} in {', '.join(written)}" if len(written) <= 3
            else f"{part} {written[0]} .. {written[-1]} ({len(written)} partitions)"
        )  # fmt: skip
    elif part is not None and before is None:
        scoped, scope = df, "whole table (created by this run)"
        written = ["*"]  # every partition (listed only by the checks that need them)
    else:
        scoped, scope = df, "whole table"
    # the checks that are plain aggregates share one pass over the scope
    shared = _shared_aggregates(checks, part)
    row = scoped.agg(*[c.alias(k) for k, c in shared.items()]).first() if shared else None
    stats = row.asDict() if row is not None else {}
    results = [
        _one(lake, name, i, check, stats, scoped, df, part, written, before, as_of, scope)
        for i, check in enumerate(checks)
    ]
    for r in results:
        if r.status == "fail":
            log.warning("quality %s %s", r.level, r.line())
    return results


def _shared_aggregates(checks: Sequence[Mapping[str, Any]], part: str | None) -> dict[str, Column]:
    """Aggregates of the checks evaluated in one pass, keyed ``c<check index>_<what>``."""
    out: dict[str, Column] = {"rows": F.count(F.lit(1))}
    for i, check in enumerate(checks):
        kind = check["check"]
        if kind == "not_null":
            for j, c in enumerate(check["columns"]):
                out[f"c{i}_null{j}"] = F.sum(F.col(c).isNull().cast("long"))
        elif kind == "range":
            col = F.col(check["column"])
            cond = F.lit(False)
            if check.get("min") is not None:
                cond = cond | (col < F.lit(check["min"]))
            if check.get("max") is not None:
                cond = cond | (col > F.lit(check["max"]))
            out[f"c{i}_bad"] = F.sum(cond.cast("long"))
            out[f"c{i}_lo"], out[f"c{i}_hi"] = F.min(col), F.max(col)
        elif kind == "freshness" and part is None:
            out[f"c{i}_max"] = F.max(check["column"])
    return out


def _one(
    lake: Lake,
    name: str,
    i: int,
    check: Mapping[str, Any],
    stats: Mapping[str, Any],
    scoped: DataFrame,
    full: DataFrame,
    part: str | None,
    written: Sequence[str],
    before: int | None,
    as_of: dt.date | None,
    scope: str,
) -> CheckResult:
    kind, level, label = check["check"], check["level"], _label(check)

    def result(ok: bool | None, observed: str, expected: str) -> CheckResult:
        status = "skipped" if ok is None else ("pass" if ok else "fail")
        return CheckResult(name, label, level, status, observed, expected, scope)

    if kind == "not_null":
        nulls = {c: int(stats.get(f"c{i}_null{j}") or 0) for j, c in enumerate(check["columns"])}
        bad = {c: n for c, n in nulls.items() if n}
        observed = ", ".join(f"{n} null {c}" for c, n in bad.items()) or "no nulls"
        return result(not bad, observed, "no nulls")
    if kind == "unique":
        cols = list(check["columns"])
        # within each date partition: a snapshot table holds one row per key and date
        by = [part, *cols] if part is not None and part not in cols else cols
        dupes = scoped.groupBy(*by).count().where(F.col("count") > 1)
        row = dupes.agg(F.count(F.lit(1)).alias("keys"), F.sum("count").alias("rows")).first()
        keys = int(row["keys"] or 0) if row is not None else 0
        dup_rows = int(row["rows"] or 0) if row is not None else 0
        observed = f"{keys} duplicated key(s) over {dup_rows} rows" if keys else "unique"
        return result(keys == 0, observed, f"one row per ({', '.join(cols)})")
    if kind == "range":
        n_bad = int(stats.get(f"c{i}_bad") or 0)
        span = f"min {stats.get(f'c{i}_lo')}, max {stats.get(f'c{i}_hi')}"
        observed = f"{n_bad} row(s) out of range ({span})" if n_bad else span
        return result(n_bad == 0, observed, _bounds(check, "min", "max"))
    if kind == "row_count":
        n = int(stats.get("rows") or 0)
        return result(
            not _outside(n, check, "min", "max"),
            f"{n} rows",
            _bounds(check, "min", "max") + " rows",
        )
    if kind == "freshness":
        column, limit = check["column"], int(check["max_age_days"])
        if part is not None:
            # each date partition against its own date (a snapshot as of D holds data to D)
            newest = scoped.groupBy(part).agg(F.max(column).alias("m")).collect()
            if not newest:
                return result(None, "no rows", f"newest {column} within {limit} days of {part}")
            ages = sorted(
                ((r[part] - _day(r["m"])).days if r["m"] is not None else 10**6, r[part])
                for r in newest
            )
            age, day = ages[-1]
            what = "no value" if age == 10**6 else f"newest {column} {age} days before"
            return result(
                age <= limit,
                f"{what} {part} {day}",
                f"newest {column} within {limit} days of each {part}",
            )
        if as_of is None:
            return result(None, "no --as-of", f"newest {column} within {limit} days")
        value = stats.get(f"c{i}_max")
        expected = f"newest {column} >= {as_of - dt.timedelta(days=limit)}"
        if value is None:
            return result(False, "no rows", expected)
        age = (as_of - _day(value)).days
        return result(age <= limit, f"newest {_day(value)} ({age} days before {as_of})", expected)
    if kind == "row_count_change":
        expected = _bounds(check, "min_ratio", "max_ratio") + " x the previous run's rows"
        if part is not None and written:
            # every written partition against the latest partition before it
            per_day: dict[dt.date, int] = {
                r[0]: int(r[1]) for r in full.groupBy(part).count().collect()
            }
            days = sorted(per_day)
            targets = days if written == ["*"] else [dt.date.fromisoformat(w) for w in written]
            compared: list[tuple[float, str]] = []
            for d in targets:
                earlier = [x for x in days if x < d]
                if d not in per_day or not earlier or per_day[earlier[-1]] == 0:
                    continue
                n, prev = per_day[d], per_day[earlier[-1]]
                compared.append(
                    (
                        n / prev,
                        f"{n} rows in {part} {d} vs {prev} in {earlier[-1]} (x{n / prev:.2f})",
                    )
                )
            failing = [c for c in compared if _outside(c[0], check, "min_ratio", "max_ratio")]
            if not compared:
                return result(None, f"no earlier {part} to compare", expected)
            worst = failing[0] if failing else max(compared, key=lambda c: abs(c[0] - 1))
            return result(
                not _outside(worst[0], check, "min_ratio", "max_ratio"), worst[1], expected
            )
        now = int(stats.get("rows") or 0)
        if before is not None and part is None:
            prev = lake.read(name, version=before).count()
        else:
            return result(None, f"{now} rows, no previous run to compare", expected)
        if prev == 0:
            return result(None, f"{now} rows, version {before} had 0", expected)
        ratio = now / prev
        observed = f"{now} rows vs {prev} in version {before} (x{ratio:.2f})"
        return result(not _outside(ratio, check, "min_ratio", "max_ratio"), observed, expected)
    raise ConfigError(f"unknown check '{kind}'")  # parse_checks refuses it first


def configured(
    cfg_quality: Mapping[str, Any] | None, known: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """``quality.tables`` validated against the catalog ({} when quality.enabled is false)."""
    if not cfg_quality or not cfg_quality.get("enabled", True):
        return {}
    tables = cfg_quality.get("tables") or {}
    if not isinstance(tables, Mapping):
        raise ConfigError("quality.tables: expected a mapping of table -> checks")
    unknown = sorted(set(tables) - set(known))
    if unknown:
        raise ConfigError(f"quality.tables: unknown table(s) {', '.join(unknown)}")
    return {name: parse_checks(name, raw) for name, raw in tables.items()}


def enforce(
    lake: Lake,
    gates: Mapping[str, Sequence[Mapping[str, Any]]],
    written: Mapping[str, int | None],
    as_of: dt.date | None,
) -> list[CheckResult]:
    """Check every written table that has gates; raise on a failed ``error`` check (after all
    tables are checked, so the run records every result)."""
    results: list[CheckResult] = []
    # the checks read what the job wrote: not inputs of the run (meta.runs.inputs)
    saved, lake.lineage = lake.lineage, None
    try:
        for name in sorted(written):
            if name in gates and lake.exists(name):
                results.extend(check_table(lake, name, gates[name], written[name], as_of))
    finally:
        lake.lineage = saved
    return results


def failed_errors(results: Sequence[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.status == "fail" and r.level == "error"]


def gate_error(failures: Sequence[CheckResult]) -> QualityGateError:
    first = failures[0].line()
    more = f" (+{len(failures) - 1} more failed check(s))" if len(failures) > 1 else ""
    return QualityGateError(
        f"quality gate failed: {first}{more}; the job's writes were rolled back"
    )


__all__ = [
    "CheckResult",
    "QualityGateError",
    "check_table",
    "configured",
    "enforce",
    "failed_errors",
    "gate_error",
    "parse_checks",
]
