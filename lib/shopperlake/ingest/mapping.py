"""Source mappings: how one source's raw files map onto the canonical tables.

A mapping is YAML (``conf/sources/<source>.yaml`` or ``--mapping FILE``) with one block per
entity (``events``, ``items``, ``users``, ``promotions``). Column mappings are Spark SQL
expressions over the raw fields, all of which are read as strings. See
``conf/sources/custom.yaml`` for a commented example.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shopperlake.core.config import load_yaml_text, read_conf_text
from shopperlake.core.errors import ConfigError, InputError
from shopperlake.core.schemas import EVENT_TYPES, IS_CURRENT, SCHEMAS, VALID_TO

FORMATS = ("csv", "json", "parquet", "text")
ENTITIES = ("items", "users", "events", "promotions")  # ingest order: dimensions first
# Columns ingest sets itself (a mapping cannot map them). ``valid_from`` of items/users is
# mappable: the attribute timestamp of a source that has one (e.g. ``updated_at``).
LINEAGE = {"event_date", "source", "ingest_run_id", "updated_run_id", VALID_TO, IS_CURRENT}
KEYS = {
    "events": "event_id",
    "items": "item_id",
    "users": "user_id",
    "promotions": "promotion_id",
}
# Insert-only entities (re-ingesting adds nothing) and the date column their table is
# partitioned by; items and users keep a type-2 history instead.
INSERT_ONLY = {"events": "event_date", "promotions": "start_date"}
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENTITY_KEYS = {
    "format",
    "path",
    "optional",
    "fields",
    "options",
    "header",
    "delimiter_regex",
    "skip_regex",
    "columns",
    "constants",
    "timestamp",
    "event_type_map",
    "required",
    "order_id_from_event",
    "transform",
    "params",
    "reject",
    "reject_exact_duplicates",
}
_SOURCE_KEYS = {"name", "description", "default_input", "entities"}


@dataclass(frozen=True)
class TimestampSpec:
    """Where the event time comes from: a raw field (or expression), its format and zone."""

    expr: str
    format: str | None = None
    timezone: str = "UTC"


@dataclass(frozen=True)
class RejectRule:
    """A source's own quarantine rule: rows where ``when`` (Spark SQL over the raw fields) is
    true go to quarantine with ``reason`` (e.g. Online Retail's postage and fee lines)."""

    reason: str
    when: str


@dataclass(frozen=True)
class DefaultInput:
    """Where a source's data is found without ``--input``: a file inside an installed PyPI
    package (``package`` + ``resource``) or a file under the project root that a make target
    fetches (``file`` + ``fetch``)."""

    package: str = ""
    resource: str = ""
    file: str = ""
    fetch: str = ""


@dataclass(frozen=True)
class EntityMapping:
    entity: str
    format: str
    fields: tuple[str, ...]
    path: str = ""
    optional: bool = False
    options: dict[str, str] = field(default_factory=dict)
    header: bool = False
    delimiter_regex: str | None = None
    skip_regex: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    timestamp: TimestampSpec | None = None
    event_type_map: dict[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    order_id_from_event: bool = False
    transform: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    reject: tuple[RejectRule, ...] = ()
    reject_exact_duplicates: bool = False

    @property
    def key(self) -> str:
        return KEYS[self.entity]

    @property
    def has_own_key(self) -> bool:
        return self.key in self.columns


@dataclass(frozen=True)
class SourceMapping:
    name: str
    entities: dict[str, EntityMapping]
    description: str = ""
    default_input: DefaultInput | None = None


def canonical_columns(entity: str) -> list[str]:
    return [f.name for f in SCHEMAS[entity].fields if f.name not in LINEAGE]


def _entity(name: str, raw: Any, origin: str) -> EntityMapping:
    where = f"{origin}: entities.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping")
    unknown = set(raw) - _ENTITY_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    fmt = raw.get("format")
    if fmt not in FORMATS:
        raise ConfigError(f"{where}.format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    fields = tuple(raw.get("fields") or ())
    if not fields:
        raise ConfigError(f"{where}.fields: list the raw field names")
    bad = [f for f in fields if not isinstance(f, str) or not _FIELD.match(f)]
    if bad:
        raise ConfigError(f"{where}.fields: invalid field name(s) {bad}")
    if fmt == "text" and not raw.get("delimiter_regex"):
        raise ConfigError(f"{where}: format text needs delimiter_regex")
    allowed = set(canonical_columns(name))
    columns = {str(k): str(v) for k, v in (raw.get("columns") or {}).items()}
    constants = dict(raw.get("constants") or {})
    for target in [*columns, *constants]:
        if target not in allowed:
            raise ConfigError(
                f"{where}: '{target}' is not a canonical {name} column "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
    ts_spec = None
    ts_raw = raw.get("timestamp")
    if name == "events":
        if not isinstance(ts_raw, dict) or "field" not in ts_raw:
            raise ConfigError(f"{where}.timestamp needs 'field' (and optional format, timezone)")
        ts_spec = TimestampSpec(
            expr=str(ts_raw["field"]),
            format=ts_raw.get("format"),
            timezone=str(ts_raw.get("timezone", "UTC")),
        )
        etmap = {str(k).lower(): str(v) for k, v in (raw.get("event_type_map") or {}).items()}
        wrong = sorted(v for v in etmap.values() if v not in EVENT_TYPES)
        if wrong:
            raise ConfigError(f"{where}.event_type_map maps to unknown event type(s) {wrong}")
        if "event_type" not in columns and "event_type" not in constants:
            raise ConfigError(f"{where}: map 'event_type' in columns or constants")
    else:
        etmap = {}
    required = tuple(raw.get("required") or ())
    for col in required:
        if col not in allowed:
            raise ConfigError(f"{where}.required: '{col}' is not a canonical {name} column")
    for regex_key in ("delimiter_regex", "skip_regex"):
        if raw.get(regex_key):
            try:
                re.compile(raw[regex_key])
            except re.error as exc:
                raise ConfigError(f"{where}.{regex_key}: invalid regex: {exc}") from exc
    reject = tuple(
        _reject_rule(r, f"{where}.reject[{i}]") for i, r in enumerate(raw.get("reject") or ())
    )
    return EntityMapping(
        entity=name,
        format=fmt,
        fields=fields,
        path=str(raw.get("path") or ""),
        optional=bool(raw.get("optional", False)),
        options={str(k): str(v) for k, v in (raw.get("options") or {}).items()},
        header=bool(raw.get("header", False)),
        delimiter_regex=raw.get("delimiter_regex"),
        skip_regex=raw.get("skip_regex"),
        columns=columns,
        constants=constants,
        timestamp=ts_spec,
        event_type_map=etmap,
        required=required,
        order_id_from_event=bool(raw.get("order_id_from_event", False)),
        transform=raw.get("transform"),
        params=dict(raw.get("params") or {}),
        reject=reject,
        reject_exact_duplicates=bool(raw.get("reject_exact_duplicates", False)),
    )


_REASON = re.compile(r"^[a-z][a-z0-9_]*$")


def _reject_rule(raw: Any, where: str) -> RejectRule:
    if not isinstance(raw, dict) or set(raw) != {"reason", "when"}:
        raise ConfigError(f"{where} needs exactly 'reason' and 'when'")
    reason, when = str(raw["reason"]), str(raw["when"])
    if not _REASON.match(reason):
        raise ConfigError(f"{where}.reason must be a snake_case code, got {reason!r}")
    return RejectRule(reason, when)


def _default_input(raw: Any, origin: str) -> DefaultInput | None:
    if raw is None:
        return None
    if isinstance(raw, dict) and set(raw) == {"package", "resource"}:
        return DefaultInput(package=str(raw["package"]), resource=str(raw["resource"]))
    if isinstance(raw, dict) and set(raw) == {"file", "fetch"}:
        return DefaultInput(file=str(raw["file"]), fetch=str(raw["fetch"]))
    raise ConfigError(f"{origin}: default_input needs package and resource, or file and fetch")


def parse_mapping(data: dict[str, Any], origin: str) -> SourceMapping:
    unknown = set(data) - _SOURCE_KEYS
    if unknown:
        raise ConfigError(f"{origin}: unknown key(s) {', '.join(sorted(unknown))}")
    entities_raw = data.get("entities")
    if not isinstance(entities_raw, dict) or not entities_raw:
        raise ConfigError(f"{origin}: 'entities' must map entity names to their mapping")
    wrong = set(entities_raw) - set(ENTITIES)
    if wrong:
        raise ConfigError(f"{origin}: unknown entit(ies) {', '.join(sorted(wrong))}")
    entities = {n: _entity(n, entities_raw[n], origin) for n in ENTITIES if n in entities_raw}
    default_input = _default_input(data.get("default_input"), origin)
    return SourceMapping(
        name=str(data.get("name") or origin),
        entities=entities,
        description=str(data.get("description", "")),
        default_input=default_input,
    )


def load_mapping(source: str, mapping_file: str | None = None) -> SourceMapping:
    """The mapping for ``source``: ``--mapping FILE`` if given, else ``conf/sources/``."""
    if not re.match(r"^[a-z][a-z0-9_]*$", source or ""):
        raise InputError(f"invalid source name {source!r}")
    if mapping_file:
        path = Path(mapping_file)
        if not path.is_file():
            raise InputError(f"mapping file not found: {mapping_file}")
        text, origin = path.read_text(encoding="utf-8"), str(path)
    else:
        try:
            text = read_conf_text(f"sources/{source}.yaml")
        except ConfigError:
            raise InputError(
                f"unknown source '{source}': no conf/sources/{source}.yaml "
                "(pass --mapping FILE for your own logs)"
            ) from None
        origin = f"conf/sources/{source}.yaml"
    mapping = parse_mapping(load_yaml_text(text, origin), origin)
    return SourceMapping(
        name=source,
        entities=mapping.entities,
        description=mapping.description,
        default_input=mapping.default_input,
    )
