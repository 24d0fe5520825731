"""Typed view of one model's config block (``models.<name>`` in conf/base.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from shopperlake.core.config import Config
from shopperlake.core.errors import ConfigError, InputError
from shopperlake.seqmodel.heads import HeadParams, head_params

KINDS = ("churn", "propensity")
DESIGNS = ("rolling", "holdout")
CALIBRATION_METHODS = ("platt", "isotonic")
# Every key a ``models.<name>`` block may have (``models`` is an open map in the config, so
# this is where a misspelt knob is caught instead of being silently ignored).
BLOCK_KEYS = frozenset(
    {
        "kind", "lookback_days", "horizon_days", "population", "auto_cutoffs",
        "cutoff_step_days", "validation_share", "categorical_features", "exclude_features",
        "log_transform", "vocab_size", "threshold", "promotion", "risk_bands", "score_table",
        "gbt_max_iter", "importance_rows", "dnn", "design", "test_share", "split_seed",
        "calibration", "sequence",
    }
)  # fmt: skip
SUB_KEYS = {"threshold": frozenset({"strategy", "budget"}),
            "promotion": frozenset({"metric", "min_delta"})}  # fmt: skip


@dataclass(frozen=True)
class DnnParams:
    hidden: tuple[int, ...] = (64, 32)
    dropout: float = 0.1
    learning_rate: float = 0.001
    batch_size: int = 256
    epochs: int = 30
    patience: int = 4
    num_proc: int = 2
    seed: int = 7


@dataclass(frozen=True)
class CalibrationParams:
    """Candidates chosen between on the validation split by ``folds``-fold log loss."""

    methods: tuple[str, ...] = CALIBRATION_METHODS
    folds: int = 5
    seed: int = 7


@dataclass(frozen=True)
class ModelSpec:
    """Label definition, features and training settings of one tabular model."""

    name: str
    kind: str
    lookback_days: int
    horizon_days: int
    population: str  # purchasers | active
    categorical_features: tuple[str, ...]
    exclude_features: tuple[str, ...]
    log_transform: bool
    vocab_size: int
    validation_share: float
    threshold_strategy: Literal["max_f1", "budget"]
    budget: float
    promotion_metric: str
    promotion_min_delta: float
    risk_bands: dict[str, float]
    auto_cutoffs: int
    cutoff_step_days: int
    score_table: str
    gbt_max_iter: int = 60
    importance_rows: int = 20_000
    dnn: DnnParams = field(default_factory=DnnParams)
    design: str = "rolling"  # rolling | holdout (see ml/training_set.py)
    test_share: float = 0.2  # holdout design: users in the test split
    split_seed: int = 7  # holdout design: seed of the user hash
    calibration: CalibrationParams = field(default_factory=CalibrationParams)
    # the sequence-encoder candidate and its blend with the DNN (seqmodel/heads.py)
    sequence: HeadParams = field(default_factory=HeadParams)

    @property
    def label_name(self) -> str:
        return "churned" if self.kind == "churn" else "purchased"

    @property
    def outside_population(self) -> str:
        """``population`` value of users outside the model's population at a date."""
        if self.kind == "propensity" and self.population == "active":
            return "inactive_in_lookback"
        return "no_purchase_in_lookback"


def _get(block: dict[str, Any], key: str, name: str, kind: type) -> Any:
    if key not in block:
        raise ConfigError(f"models.{name}.{key} is required")
    value = block[key]
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind):
        raise ConfigError(f"models.{name}.{key} must be {kind.__name__}, got {value!r}")
    return value


def model_spec(cfg: Config, name: str) -> ModelSpec:
    models = cfg.get("models") or {}
    if name not in models:
        raise InputError(f"unknown model '{name}' (configured: {', '.join(sorted(models))})")
    block = models[name]
    if not isinstance(block, dict):
        raise ConfigError(f"models.{name} must be a mapping")
    unknown = set(block) - BLOCK_KEYS
    if unknown:
        raise ConfigError(f"models.{name}: unknown key(s) {', '.join(sorted(unknown))}")
    for sub, keys in SUB_KEYS.items():
        extra = set(block.get(sub) or {}) - keys
        if extra:
            raise ConfigError(f"models.{name}.{sub}: unknown key(s) {', '.join(sorted(extra))}")
    kind = _get(block, "kind", name, str)
    if kind not in KINDS:
        raise ConfigError(f"models.{name}.kind must be one of {', '.join(KINDS)}")
    dnn_block = dict(block.get("dnn") or {})
    known = {f.name for f in fields(DnnParams)}
    unknown = set(dnn_block) - known
    if unknown:
        raise ConfigError(f"models.{name}.dnn: unknown key(s) {', '.join(sorted(unknown))}")
    if "hidden" in dnn_block:
        dnn_block["hidden"] = tuple(int(h) for h in dnn_block["hidden"])
    population = str(block.get("population", "purchasers"))
    if population not in {"purchasers", "active"}:
        raise ConfigError(f"models.{name}.population must be purchasers or active")
    if kind == "churn" and population != "purchasers":
        raise ConfigError(
            f"models.{name}.population has no effect for kind churn (always purchasers)"
        )
    for knob in ("gbt_max_iter", "importance_rows"):
        if int(block.get(knob, 1)) < 1:
            raise ConfigError(f"models.{name}.{knob} must be >= 1")
    threshold = block.get("threshold") or {}
    strategy: Literal["max_f1", "budget"]
    raw_strategy = str(threshold.get("strategy", "max_f1"))
    if raw_strategy == "max_f1":
        strategy = "max_f1"
    elif raw_strategy == "budget":
        strategy = "budget"
    else:
        raise ConfigError(f"models.{name}.threshold.strategy must be max_f1 or budget")
    promotion = block.get("promotion") or {}
    bands = {str(k): float(v) for k, v in (block.get("risk_bands") or {}).items()}
    bad_bands = {k: v for k, v in bands.items() if not 0.0 < v <= 1.0}
    if bad_bands:
        raise ConfigError(
            f"models.{name}.risk_bands are calibrated probabilities in (0, 1], got {bad_bands}"
        )
    design = str(block.get("design", "rolling"))
    if design not in DESIGNS:
        raise ConfigError(f"models.{name}.design must be one of {', '.join(DESIGNS)}")
    validation_share = float(block.get("validation_share", 0.2))
    test_share = float(block.get("test_share", 0.2))
    if not 0.0 < validation_share < 1.0:
        raise ConfigError(f"models.{name}.validation_share must be in (0, 1)")
    if not (test_share > 0.0 and validation_share + test_share < 1.0):
        raise ConfigError(
            f"models.{name}: test_share {test_share} and validation_share {validation_share} "
            "must be positive and leave users for training (sum below 1)"
        )
    calibration = _calibration(block.get("calibration") or {}, name)
    return ModelSpec(
        name=name,
        kind=kind,
        lookback_days=_get(block, "lookback_days", name, int),
        horizon_days=_get(block, "horizon_days", name, int),
        population=population,
        categorical_features=tuple(block.get("categorical_features") or ()),
        exclude_features=tuple(block.get("exclude_features") or ()),
        log_transform=bool(block.get("log_transform", True)),
        vocab_size=int(block.get("vocab_size", 20)),
        validation_share=validation_share,
        threshold_strategy=strategy,
        budget=float(threshold.get("budget", 0.1)),
        promotion_metric=str(promotion.get("metric", "roc_auc")),
        promotion_min_delta=float(promotion.get("min_delta", 0.0)),
        risk_bands=bands or {"high": 0.75, "medium": 0.5},
        auto_cutoffs=int(block.get("auto_cutoffs", 4)),
        cutoff_step_days=int(block.get("cutoff_step_days", 30)),
        score_table=str(block.get("score_table", f"gold.{kind}_scores")),
        gbt_max_iter=int(block.get("gbt_max_iter", 60)),
        importance_rows=int(block.get("importance_rows", 20_000)),
        dnn=DnnParams(**dnn_block),
        design=design,
        test_share=test_share,
        split_seed=int(block.get("split_seed", 7)),
        calibration=calibration,
        sequence=head_params(dict(block.get("sequence") or {}), f"models.{name}.sequence"),
    )


def _calibration(block: dict[str, Any], name: str) -> CalibrationParams:
    unknown = set(block) - {f.name for f in fields(CalibrationParams)}
    if unknown:
        raise ConfigError(f"models.{name}.calibration: unknown key(s) {', '.join(sorted(unknown))}")
    methods = tuple(str(m) for m in block.get("methods", CALIBRATION_METHODS))
    bad = [m for m in methods if m not in CALIBRATION_METHODS]
    if not methods or bad:
        raise ConfigError(
            f"models.{name}.calibration.methods: one or more of {', '.join(CALIBRATION_METHODS)}"
            f"{f', got {bad}' if bad else ''}"
        )
    folds = int(block.get("folds", 5))
    if folds < 2:
        raise ConfigError(f"models.{name}.calibration.folds must be >= 2")
    return CalibrationParams(methods, folds, int(block.get("seed", 7)))
