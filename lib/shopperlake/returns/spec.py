"""Typed view of the ``returns`` config block (conf/base.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from shopperlake.churn.spec import CalibrationParams, DnnParams, _calibration
from shopperlake.core.config import Config
from shopperlake.core.errors import ConfigError
from shopperlake.seqmodel.heads import HeadParams, head_params

MODEL = "returns"
KEYS = frozenset(
    {
        "horizon_days", "test_days", "validation_share", "split_seed", "item_prior_lines",
        "categorical_features", "vocab_size", "risk_bands", "top_share", "gbt_max_iter",
        "gbt_class_weights", "calibration", "dnn", "promotion_metric", "sequence", "ensemble",
        "score_with",
    }
)  # fmt: skip
FEATURE_CATEGORICALS = ("country", "day_of_week")
# scorers the "ensemble" candidate may average (train.py)
ENSEMBLE_MEMBERS = ("dnn", "gbt", "logreg", "sequence", "blend")
SCORABLE = ("dnn", "gbt", "logreg")  # the members score (gold.return_risk) can compute
SCORERS = ("dnn", "ensemble")


@dataclass(frozen=True)
class ReturnsSpec:
    """Label, split and training settings of the return model."""

    horizon_days: int = 90
    test_days: int = 101
    validation_share: float = 0.2
    split_seed: int = 7
    item_prior_lines: float = 20.0
    categorical_features: tuple[str, ...] = FEATURE_CATEGORICALS
    vocab_size: int = 30
    risk_bands: dict[str, float] = field(default_factory=lambda: {"high": 0.3, "medium": 0.1})
    top_share: float = 0.05
    gbt_max_iter: int = 60
    gbt_class_weights: bool = False
    promotion_metric: str = "roc_auc"
    calibration: CalibrationParams = field(default_factory=CalibrationParams)
    dnn: DnnParams = field(default_factory=DnnParams)
    # the sequence-encoder candidate and its blend with the DNN (train.py, seqmodel/heads.py)
    sequence: HeadParams = field(default_factory=HeadParams)
    # returns.sequence.lines_per_row: a purchase day's lines per head row (more: more rows)
    head_lines_per_row: int = 32
    # the "ensemble" candidate: mean of these scorers' calibrated probabilities (() = none)
    ensemble: tuple[str, ...] = ("dnn", "gbt")
    # the scorer of gold.return_risk, promoted on its test metric: "dnn" or "ensemble"
    score_with: str = "ensemble"

    @property
    def name(self) -> str:
        return MODEL


def returns_spec(cfg: Config) -> ReturnsSpec:
    block: dict[str, Any] = dict(cfg.get("returns") or {})
    unknown = set(block) - KEYS
    if unknown:
        raise ConfigError(f"returns: unknown key(s) {', '.join(sorted(unknown))}")
    dnn_block = dict(block.pop("dnn", None) or {})
    bad = set(dnn_block) - {f.name for f in fields(DnnParams)}
    if bad:
        raise ConfigError(f"returns.dnn: unknown key(s) {', '.join(sorted(bad))}")
    if "hidden" in dnn_block:
        dnn_block["hidden"] = tuple(int(h) for h in dnn_block["hidden"])
    calibration = _calibration(block.pop("calibration", None) or {}, MODEL)
    sequence_block = dict(block.pop("sequence", None) or {})
    lines_per_row = sequence_block.pop("lines_per_row", 32)
    if isinstance(lines_per_row, bool) or not isinstance(lines_per_row, int) or lines_per_row < 1:
        raise ConfigError(
            f"returns.sequence.lines_per_row must be an int >= 1, got {lines_per_row!r}"
        )
    sequence = head_params(sequence_block, "returns.sequence")
    ensemble = block.get("ensemble", ("dnn", "gbt"))
    if not isinstance(ensemble, list | tuple):
        raise ConfigError(
            f"returns.ensemble must be a list of scorers (e.g. [dnn, gbt]), got {ensemble!r}"
        )
    bands = {str(k): float(v) for k, v in (block.pop("risk_bands", None) or {}).items()}
    if any(not 0.0 < v <= 1.0 for v in bands.values()):
        raise ConfigError(f"returns.risk_bands are probabilities in (0, 1], got {bands}")
    spec = ReturnsSpec(
        **{k: v for k, v in block.items() if k not in ("categorical_features", "ensemble")},
        categorical_features=tuple(block.get("categorical_features", FEATURE_CATEGORICALS)),
        ensemble=tuple(str(m) for m in ensemble),
        risk_bands=bands or {"high": 0.3, "medium": 0.1},
        calibration=calibration,
        dnn=DnnParams(**dnn_block),
        sequence=sequence,
        head_lines_per_row=lines_per_row,
    )
    if spec.horizon_days < 1 or spec.test_days < 1:
        raise ConfigError("returns.horizon_days and returns.test_days must be >= 1")
    if not 0.0 < spec.validation_share < 1.0:
        raise ConfigError("returns.validation_share must be in (0, 1)")
    if not 0.0 < spec.top_share < 1.0:
        raise ConfigError("returns.top_share must be in (0, 1)")
    wrong = [c for c in spec.categorical_features if c not in FEATURE_CATEGORICALS]
    if wrong:
        raise ConfigError(
            f"returns.categorical_features: unknown {wrong} (known: {list(FEATURE_CATEGORICALS)})"
        )
    check_ensemble(spec)
    check_scorer(spec)
    return spec


def check_ensemble(spec: ReturnsSpec) -> None:
    members = spec.ensemble
    if not members:
        return
    unknown = [m for m in members if m not in ENSEMBLE_MEMBERS]
    if unknown:
        raise ConfigError(
            f"returns.ensemble: unknown scorer(s) {unknown} (known: {list(ENSEMBLE_MEMBERS)})"
        )
    if len(set(members)) != len(members) or len(members) < 2:
        raise ConfigError(
            f"returns.ensemble averages two or more distinct scorers, got {list(members)} "
            "([] leaves the ensemble out)"
        )
    if not spec.sequence.enabled and {"sequence", "blend"} & set(members):
        raise ConfigError(
            f"returns.ensemble {list(members)} names the sequence head's scores, but "
            "returns.sequence.enabled is false"
        )


def check_scorer(spec: ReturnsSpec) -> None:
    if spec.score_with not in SCORERS:
        raise ConfigError(f"returns.score_with: '{spec.score_with}' is not one of {SCORERS}")
    if spec.score_with == "ensemble":
        if not spec.ensemble:
            raise ConfigError("returns.score_with is ensemble but returns.ensemble is []")
        unscorable = [m for m in spec.ensemble if m not in SCORABLE]
        if unscorable:
            raise ConfigError(
                f"returns.score_with is ensemble, but score cannot compute {unscorable} "
                f"(score uses {list(SCORABLE)}): set returns.score_with: dnn or drop them "
                "from returns.ensemble"
            )
