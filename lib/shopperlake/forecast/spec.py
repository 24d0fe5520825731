"""The ``forecast`` config block, checked once: levels, horizon limits, methods, backtest."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from shopperlake.core.calendar import parse_closed_days
from shopperlake.core.config import Config
from shopperlake.core.errors import ConfigError, InputError
from shopperlake.forecast.global_model import GlobalSpec
from shopperlake.forecast.local import METHOD_NAMES, LocalSpec

LEVELS = ("item", "category")
CHOICES = ("level", "series")


@dataclass(frozen=True)
class LevelRule:
    """Which series a level forecasts: categories with >= ``min_units`` units, or the
    ``top_n`` items by units, in the selection window."""

    level: str
    min_units: float | None = None
    top_n: int | None = None


@dataclass(frozen=True)
class ForecastSettings:
    horizon: int
    max_horizon: int
    methods: tuple[str, ...]
    ensemble: bool
    season_length: int
    window_size: int
    validation_windows: int
    min_history_days: int
    history_days: int
    selection_days: int
    buckets: int
    sources: tuple[str, ...] | None
    exclude_departments: tuple[str, ...]
    levels: dict[str, LevelRule]
    backtest_start: dt.date
    backtest_origins: tuple[dt.date, ...]
    backtest_selection: tuple[dt.date, dt.date]
    backtest_sources: tuple[str, ...] | None
    global_model: GlobalSpec | None  # None: disabled
    choice: str = "level"  # level | series
    closed_days: tuple[str, ...] = ()  # MM-DD or YYYY-MM-DD: the shop is closed, demand 0

    def level(self, name: str) -> LevelRule:
        if name not in self.levels:
            raise InputError(
                f"unknown --level '{name}': forecast.levels configures {', '.join(self.levels)}"
            )
        return self.levels[name]

    def check_horizon(self, horizon: int) -> int:
        if not 1 <= horizon <= self.max_horizon:
            raise InputError(
                f"--horizon {horizon} is outside 1..{self.max_horizon} days "
                "(forecast.max_horizon)"
            )
        return horizon

    def global_spec(self, horizon: int) -> GlobalSpec | None:
        if self.global_model is None:
            return None
        return dataclasses.replace(self.global_model, horizon=horizon)

    def local(
        self,
        start: dt.date,
        origins: tuple[dt.date, ...],
        horizon: int,
        with_actuals: bool,
        external: Mapping[tuple[str, dt.date], tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> LocalSpec:
        return LocalSpec(
            start=start,
            origins=origins,
            horizon=horizon,
            methods=self.methods,
            season_length=self.season_length,
            window_size=self.window_size,
            validation_windows=self.validation_windows,
            min_history_days=self.min_history_days,
            ensemble=self.ensemble,
            with_actuals=with_actuals,
            external=external,
            closed_days=self.closed_days,
        )


def _date(value: Any, key: str) -> dt.date:
    try:
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"forecast.{key}: '{value}' is not a YYYY-MM-DD date") from None


def _sources(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(str(v) for v in value)


def forecast_settings(cfg: Config) -> ForecastSettings:
    block = cfg.section("forecast")
    methods = tuple(str(m) for m in block.get("methods") or ())
    unknown = [m for m in methods if m not in METHOD_NAMES]
    if unknown or not methods:
        raise ConfigError(
            f"forecast.methods: unknown {unknown or 'empty list'} "
            f"(statsforecast methods here: {', '.join(METHOD_NAMES)})"
        )
    levels: dict[str, LevelRule] = {}
    for name, rule in (block.get("levels") or {}).items():
        if name not in LEVELS or not isinstance(rule, dict):
            raise ConfigError(f"forecast.levels.{name}: levels are {', '.join(LEVELS)}")
        if name == "item":
            levels[name] = LevelRule(name, top_n=int(rule["top_n"]))
        else:
            levels[name] = LevelRule(name, min_units=float(rule["min_units"]))
    bt = block.get("backtest") or {}
    selection = [_date(d, "backtest.selection") for d in bt.get("selection") or ()]
    if len(selection) != 2:
        raise ConfigError("forecast.backtest.selection must be [first day, last day]")
    glob = block.get("global") or {}
    global_model = None
    if glob.get("enabled"):
        global_model = GlobalSpec(
            horizon=int(block["horizon"]),
            rounds=int(glob["rounds"]),
            eta=float(glob["eta"]),
            max_depth=int(glob["max_depth"]),
            train_every_days=int(glob["train_every_days"]),
            min_train_days=int(glob["min_train_days"]),
            max_to_history_max=float(glob["max_to_history_max"]),
            seed=int(glob["seed"]),
            promotions=bool(glob.get("promotions", True)),
        )
    settings = ForecastSettings(
        horizon=int(block["horizon"]),
        max_horizon=int(block["max_horizon"]),
        methods=methods,
        ensemble=bool(block.get("ensemble", True)),
        season_length=int(block["season_length"]),
        window_size=int(block["window_size"]),
        validation_windows=int(block["validation_windows"]),
        min_history_days=int(block["min_history_days"]),
        history_days=int(block["history_days"]),
        selection_days=int(block["selection_days"]),
        buckets=int(block["buckets"]),
        sources=_sources(block.get("sources")),
        exclude_departments=tuple(str(d) for d in block.get("exclude_departments") or ()),
        levels=levels,
        backtest_start=_date(bt.get("start"), "backtest.start"),
        backtest_origins=tuple(sorted(_date(d, "backtest.origins") for d in bt["origins"])),
        backtest_selection=(selection[0], selection[1]),
        backtest_sources=_sources(bt.get("sources")),
        global_model=global_model,
        choice=str(block.get("choice", "level")),
        closed_days=parse_closed_days(block.get("closed_days"), "forecast.closed_days"),
    )
    if settings.choice not in CHOICES:
        raise ConfigError(f"forecast.choice must be one of {', '.join(CHOICES)}")
    settings.check_horizon(settings.horizon)
    if settings.validation_windows < 1 or settings.buckets < 1:
        raise ConfigError("forecast.validation_windows and forecast.buckets must be >= 1")
    return settings


def model_version(settings: ForecastSettings, horizon: int) -> str:
    """statsforecast's version and a digest of the settings that define the forecasts: the
    same config gives the same version (re-runs replace their rows)."""
    import statsforecast

    spec = settings.local(settings.backtest_start, (), horizon, False)
    digest = json.dumps(
        {"methods": list(spec.methods), "ensemble": spec.ensemble, "season": spec.season_length,
         "window": spec.window_size, "validation_windows": spec.validation_windows,
         "min_history_days": spec.min_history_days, "horizon": horizon,
         "choice": settings.choice, "closed_days": list(settings.closed_days),
         "global": None if settings.global_model is None
         else dataclasses.asdict(dataclasses.replace(settings.global_model, horizon=horizon))},
        sort_keys=True,
    )  # fmt: skip
    return (
        f"statsforecast-{statsforecast.__version__}-{hashlib.sha1(digest.encode()).hexdigest()[:8]}"
    )
