"""Typed view of the ``recommender`` config section."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shopperlake.errors import ConfigError

SOURCES = ("popularity", "itemcf", "ease", "als", "content")
PROTOCOLS = ("time", "random", "last_order")


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
    blend: dict[str, Any] = field(default_factory=dict)
    similar_items_n: int = 20

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
            blend=dict(section["blend"]),
            similar_items_n=int(section["similar_items_n"]),
        )
        params.validate()
        return params

    def validate(self) -> None:
        checks = [
            (self.k >= 1, "recommender.k must be >= 1"),
            (self.candidates >= self.k, "recommender.candidates must be >= k"),
            (self.half_life_days > 0, "recommender.half_life_days must be > 0"),
            (self.holdout_days >= 1, "recommender.holdout_days must be >= 1"),
            (self.protocol in PROTOCOLS, "recommender.split.protocol: time | random | last_order"),
            (0.0 < self.test_ratio < 1.0, "recommender.split.test_ratio must be in (0, 1)"),
            (self.max_per_category >= 1, "recommender.max_per_category must be >= 1"),
            (self.fallback_n >= self.k, "recommender.fallback_n must be >= k"),
            (self.itemcf.get("similarity") in ("cosine", "jaccard"),
             "recommender.itemcf.similarity: cosine | jaccard"),
            (self.blend.get("normalise") in ("rrf", "minmax"),
             "recommender.blend.normalise: rrf | minmax"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        unknown = set(self.weights()) - set(SOURCES)
        if unknown:
            raise ConfigError(f"recommender.blend names unknown source(s) {sorted(unknown)}")

    def weights(self) -> dict[str, float]:
        """Blend weight per source (the non-weight keys of ``blend`` left out)."""
        return {k: float(v) for k, v in self.blend.items() if k not in ("normalise", "rrf_k")}
