"""Layered configuration: ``conf/base.yaml`` → ``conf/<env>.yaml`` → command-line overrides.

Every key an overlay or override sets must exist in ``base.yaml`` (typos fail loudly), except
under the open maps listed in :data:`OPEN_MAPS` (free-form Spark confs, catalog overrides, ...).
A value of ``???`` in the merged config marks a required key that nobody supplied.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from shopperlake.core.errors import ConfigError

MISSING = "???"
OPEN_MAPS = frozenset(
    {
        "spark.conf",
        "spark.submit_conf",
        "lake.locations",
        "catalog",
        "profiles.tags",
        "segments.rfm_map",
        "models",
        "retention.rules",
        "recommender.event_weights",
        "maintenance.expire_after_days",
        "quality.tables",
        "anomalies.feed.closed_days",
    }
)

# Open maps whose own keys contain dots (Spark conf names, table names).
DOTTED_KEY_MAPS = frozenset(
    {
        "spark.conf",
        "spark.submit_conf",
        "lake.locations",
        "catalog",
        "maintenance.expire_after_days",
        "quality.tables",
    }
)


def overlay_dir() -> Path | None:
    """A folder whose files replace the packaged ones of the same name ($SHOPPERLAKE_CONF_DIR),
    e.g. a site's own ``prod.yaml``; None when not set."""
    env = os.environ.get("SHOPPERLAKE_CONF_DIR")
    return Path(env) if env else None


def packaged(folder: str, name: str) -> Traversable:
    """A file shipped inside the package (``_conf`` = the repo's conf/, ``_sql`` = sql/)."""
    return resources.files("shopperlake").joinpath(folder, *name.split("/"))


def read_conf_text(name: str) -> str:
    """Text of a config file: from the overlay folder when it has it, else the packaged one."""
    overlay = overlay_dir()
    if overlay is not None and (overlay / name).is_file():
        return (overlay / name).read_text(encoding="utf-8")
    bundled = packaged("_conf", name)
    if bundled.is_file():
        return bundled.read_text(encoding="utf-8")
    where = f"{overlay} or the package" if overlay else "the package"
    raise ConfigError(f"config file not found: {name} (looked in {where})")


def known_environments() -> list[str]:
    """Environment names (``conf/<env>.yaml``) of the package and the overlay folder."""
    names = {e.name for e in resources.files("shopperlake").joinpath("_conf").iterdir()}
    overlay = overlay_dir()
    if overlay is not None and overlay.is_dir():
        names |= {e.name for e in overlay.iterdir()}
    return sorted(
        n.removesuffix(".yaml")
        for n in names
        if n.endswith(".yaml") and n not in {"base.yaml", "catalog.yaml"}
    )


def load_yaml_text(text: str, origin: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: top level must be a mapping, got {type(data).__name__}")
    return data


def _compatible(base: Any, new: Any) -> bool:
    if base is None or new is None or base == MISSING or new == MISSING:
        return True
    if isinstance(base, bool) or isinstance(new, bool):
        return isinstance(base, bool) and isinstance(new, bool)
    if isinstance(base, int | float) and isinstance(new, int | float):
        return not (isinstance(base, int) and isinstance(new, float))
    if isinstance(base, dict):
        return isinstance(new, dict)
    if isinstance(base, list):
        return isinstance(new, list)
    return isinstance(new, type(base))


def merge(base: dict[str, Any], overlay: Mapping[str, Any], origin: str, prefix: str = "") -> None:
    """Merge ``overlay`` into ``base`` in place, rejecting unknown keys and type changes."""
    for key, value in overlay.items():
        path = f"{prefix}{key}"
        is_open = prefix.rstrip(".") in OPEN_MAPS or any(
            prefix.startswith(f"{m}.") for m in OPEN_MAPS
        )
        if key not in base:
            if not is_open:
                raise ConfigError(f"{origin}: unknown config key '{path}'")
            base[key] = copy.deepcopy(value)
            continue
        current = base[key]
        if isinstance(current, dict) and isinstance(value, dict):
            merge(current, value, origin, f"{path}.")
            continue
        if not is_open and not _compatible(current, value):
            raise ConfigError(
                f"{origin}: config key '{path}' must be {type(current).__name__}, "
                f"got {type(value).__name__} ({value!r})"
            )
        base[key] = copy.deepcopy(value)


def parse_override(item: str) -> tuple[str, Any]:
    """``a.b.c=value`` → (``a.b.c``, YAML-parsed value)."""
    if "=" not in item:
        raise ConfigError(f"override '{item}' must look like key.path=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{item}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{item}': value is not valid YAML: {exc}") from exc
    return key, value


def _nest(key: str, value: Any) -> dict[str, Any]:
    # Keys of open maps contain dots themselves (spark.sql.x, bronze.events): everything after
    # the map's own path is one key.
    for open_map in sorted(DOTTED_KEY_MAPS, key=len, reverse=True):
        if key.startswith(f"{open_map}."):
            nested: dict[str, Any] = {key[len(open_map) + 1 :]: value}
            for part in reversed(open_map.split(".")):
                nested = {part: nested}
            return nested
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node[part] = {}
        node = node[part]
    node[parts[-1]] = value
    return out


def _find_missing(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        found: list[str] = []
        for key, value in node.items():
            found += _find_missing(value, f"{prefix}{key}.")
        return found
    return [prefix.rstrip(".")] if node == MISSING else []


@dataclass(frozen=True)
class Config:
    """Merged, validated configuration for one environment."""

    env: str
    data: dict[str, Any] = field(repr=False)

    def get(self, path: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def require(self, path: str) -> Any:
        value = self.get(path, MISSING)
        if value == MISSING or value is None:
            raise ConfigError(f"missing required config key '{path}' (env {self.env})")
        return value

    def section(self, path: str) -> dict[str, Any]:
        value = self.get(path)
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{path}' must be a mapping")
        return value


def load_config(env: str = "local", overrides: Iterable[str] = ()) -> Config:
    """Load ``base.yaml``, then ``<env>.yaml``, then ``key=value`` overrides, and validate."""
    if not env or "/" in env or env.startswith("."):
        raise ConfigError(f"invalid environment name '{env}'")
    data = load_yaml_text(read_conf_text("base.yaml"), "conf/base.yaml")
    try:
        env_text = read_conf_text(f"{env}.yaml")
    except ConfigError:
        known = known_environments()
        raise ConfigError(
            f"unknown environment '{env}': no conf/{env}.yaml (known: {', '.join(known)})"
        ) from None
    merge(data, load_yaml_text(env_text, f"conf/{env}.yaml"), f"conf/{env}.yaml")
    for item in overrides:
        key, value = parse_override(item)
        merge(data, _nest(key, value), f"override '{item}'")
    missing = _find_missing(data)
    if missing:
        raise ConfigError(f"missing required config key(s): {', '.join(missing)} (env {env})")
    return Config(env=env, data=data)


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool | int) or str(value).lower() in ("true", "false"):
        return str(value).lower() in ("true", "1")
    raise ValueError(value)


def section_dataclass(cls: type[Any], section: Mapping[str, Any], where: str) -> Any:
    """``cls(**section)`` with each value converted to its field's declared type (``int``,
    ``float``, ``bool``, ``str``; annotations as strings); an unknown key or a value that does
    not convert raises :class:`ConfigError` naming ``where.key``. Fields left out keep their
    defaults."""
    known = {f.name: str(f.type) for f in fields(cls)}
    unknown = set(section) - set(known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
    converters: dict[str, Any] = {"float": float, "bool": _as_bool, "str": str}
    values: dict[str, Any] = {}
    for name, value in section.items():
        kind = known[name]
        try:
            values[name] = converters.get(kind, int)(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}.{name}: {value!r} is not {kind}") from exc
    return cls(**values)
