"""Typed view of the ``recommender`` config section."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from shopperlake.core.errors import ConfigError
from shopperlake.rec.sasrec_source import SourceParams

SOURCES = ("popularity", "itemcf", "ease", "als", "content", "repeat", "twotower", "sasrec")
PROTOCOLS = ("time", "random", "stratified", "last_order")
BLEND_MODES = ("weights", "tuned")
# Keys of ``recommender.blend`` that are not a source weight.
BLEND_OPTIONS = (
    "mode",
    "normalise",
    "rrf_k",
    "objective",
    "grid",
    "passes",
    "tune_users",
    "normalise_grid",
    "both_halves",
)
PROMOTION_METRICS = ("precision", "recall", "ndcg", "map", "hit_rate")


@dataclass(frozen=True)
class RecParams:
    k: int = 10
    candidates: int = 100
    event_weights: dict[str, float] = field(default_factory=dict)
    half_life_days: float = 60.0
    lookback_days: int = 365
    truth_event_types: tuple[str, ...] = ("purchase",)
    holdout_days: int = 14
    validation_days: int = 14
    eval_ks: tuple[int, ...] = (5, 10, 20)
    protocol: str = "time"
    test_ratio: float = 0.2
    seed: int = 7
    exclude_bought: bool = True
    repeat_categories: tuple[str, ...] = ()
    max_per_category: int = 4
    fallback_n: int = 200
    popularity_days: int = 30
    itemcf: dict[str, Any] = field(default_factory=dict)
    ease: dict[str, Any] = field(default_factory=dict)
    als: dict[str, Any] = field(default_factory=dict)
    content: dict[str, Any] = field(default_factory=dict)
    twotower: dict[str, Any] = field(default_factory=dict)
    sasrec: dict[str, Any] = field(default_factory=dict)
    blend: dict[str, Any] = field(default_factory=dict)
    similar_items_n: int = 20
    promotion_metric: str = "ndcg@10"
    promotion_min_delta: float = 0.0

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> RecParams:
        split = dict(section.get("split") or {})
        params = cls(
            k=int(section["k"]),
            candidates=int(section["candidates"]),
            event_weights={str(k): float(v) for k, v in section["event_weights"].items()},
            half_life_days=float(section["half_life_days"]),
            lookback_days=int(section["lookback_days"]),
            truth_event_types=tuple(section["truth_event_types"]),
            holdout_days=int(section["holdout_days"]),
            validation_days=int(section["validation_days"]),
            eval_ks=tuple(int(k) for k in section["eval_ks"]),
            protocol=str(split.get("protocol", "time")),
            test_ratio=float(split.get("test_ratio", 0.2)),
            seed=int(split.get("seed", 7)),
            exclude_bought=bool(section["exclude_bought"]),
            repeat_categories=tuple(str(c) for c in section.get("repeat_categories") or ()),
            max_per_category=int(section["max_per_category"]),
            fallback_n=int(section["fallback_n"]),
            popularity_days=int(section["popularity"]["days"]),
            itemcf=dict(section["itemcf"]),
            ease=dict(section["ease"]),
            als=dict(section["als"]),
            content=dict(section["content"]),
            twotower=dict(section.get("twotower") or {}),
            sasrec=dict(section.get("sasrec") or {}),
            blend=dict(section["blend"]),
            similar_items_n=int(section["similar_items_n"]),
            promotion_metric=str(section["promotion"]["metric"]),
            promotion_min_delta=float(section["promotion"]["min_delta"]),
        )
        params.validate()
        return params

    def validate(self) -> None:
        checks = [
            (self.k >= 1, "recommender.k must be >= 1"),
            (self.candidates >= self.k, "recommender.candidates must be >= k"),
            (self.half_life_days > 0, "recommender.half_life_days must be > 0"),
            (self.holdout_days >= 1, "recommender.holdout_days must be >= 1"),
            (self.protocol in PROTOCOLS,
             "recommender.split.protocol: time | random | stratified | last_order"),
            (0.0 < self.test_ratio < 1.0, "recommender.split.test_ratio must be in (0, 1)"),
            (self.max_per_category >= 1, "recommender.max_per_category must be >= 1"),
            (self.fallback_n >= self.k, "recommender.fallback_n must be >= k"),
            (self.itemcf.get("similarity") in ("cosine", "jaccard"),
             "recommender.itemcf.similarity: cosine | jaccard"),
            (self.blend.get("normalise") in ("rrf", "minmax"),
             "recommender.blend.normalise: rrf | minmax"),
            (self.blend_mode in BLEND_MODES, "recommender.blend.mode: weights | tuned"),
            (_metric_ok(str(self.blend.get("objective", "ndcg@10")), ("ndcg", "recall",
             "precision", "hit_rate")),
             "recommender.blend.objective: ndcg | recall | precision | hit_rate @<k>"),
            (all(float(g) >= 0 for g in self.blend.get("grid", ())) and bool(self.blend_grid),
             "recommender.blend.grid must be a non-empty list of weights >= 0"),
            (int(self.blend.get("passes", 2)) >= 1, "recommender.blend.passes must be >= 1"),
            (all(m in ("rrf", "minmax") for m, _ in self.normalise_grid),
             "recommender.blend.normalise_grid entries: rrf:<k> | minmax"),
            (int(self.blend.get("tune_users", 5000)) >= 1,
             "recommender.blend.tune_users must be >= 1"),
            (_metric_ok(self.promotion_metric, PROMOTION_METRICS)
             and int(self.promotion_metric.split("@")[1]) in self.eval_ks,
             "recommender.promotion.metric must be <precision|recall|ndcg|map|hit_rate>@<k> "
             "with k in recommender.eval_ks"),
            (self.promotion_min_delta >= 0, "recommender.promotion.min_delta must be >= 0"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        unknown = set(self.weights()) - set(SOURCES)
        if unknown:
            raise ConfigError(f"recommender.blend names unknown source(s) {sorted(unknown)}")
        if self.weights().get("sasrec", 0.0) > 0:
            SourceParams.from_dict(self.sasrec)  # a bad section stops the job before any work

    def weights(self) -> dict[str, float]:
        """Blend weight per source (the non-weight keys of ``blend`` left out)."""
        return {k: float(v) for k, v in self.blend.items() if k not in BLEND_OPTIONS}

    @property
    def blend_mode(self) -> str:
        return str(self.blend.get("mode", "weights"))

    @property
    def blend_grid(self) -> tuple[float, ...]:
        return tuple(float(g) for g in self.blend.get("grid", (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)))

    def with_blend(
        self, weights: dict[str, float], normalise: str | None = None, rrf_k: float | None = None
    ) -> RecParams:
        """The same parameters with the source weights of ``blend`` replaced by ``weights``
        (sources missing from it get 0: not fitted, not blended) and, when given, another
        normalisation."""
        options = {k: v for k, v in self.blend.items() if k in BLEND_OPTIONS}
        if normalise is not None:
            options["normalise"] = normalise
        if rrf_k is not None:
            options["rrf_k"] = rrf_k
        zero = dict.fromkeys(self.weights(), 0.0)
        return dataclasses.replace(self, blend={**options, **zero, **weights})

    @property
    def normalise_grid(self) -> tuple[tuple[str, float], ...]:
        """The normalisations the tuner tries: the configured one, then the entries of
        ``blend.normalise_grid`` (``rrf:<k>`` or ``minmax``)."""
        own = (str(self.blend["normalise"]), float(self.blend.get("rrf_k", 10.0)))
        out = [own]
        for entry in self.blend.get("normalise_grid") or []:
            method, _, k = str(entry).partition(":")
            pair = (method, float(k) if k else own[1])
            if pair not in out:
                out.append(pair)
        return tuple(out)


def _metric_ok(metric: str, names: tuple[str, ...]) -> bool:
    name, _, k = metric.partition("@")
    return name in names and k.isdigit() and int(k) >= 1
