"""One model per Python worker: the scoring functions shipped to the executors
(``mapInPandas``) build their broadcast model once per worker, not once per Arrow batch.

The cache holds the latest key only: a worker that moves on to another model drops the one
before, so a long-lived worker never accumulates models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_CACHE: dict[str, Any] = {}


def worker_model(key: str, build: Callable[[], Any]) -> Any:
    """The model cached under ``key`` in this process, built with ``build()`` on first use."""
    model = _CACHE.get(key)
    if model is None:
        model = build()
        _CACHE.clear()
        _CACHE[key] = model
    return model
