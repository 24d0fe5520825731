"""Model registry: ``<registry.root>/<name>/<version>/`` plus a ``current`` pointer (the root
comes from :class:`shopperlake.core.storage.Storage`: ``registry.root``, default
``<lake root>/models``).

A version folder holds the Keras model, the feature transform, the probability calibrator
(``calibration.json``, see ml/calibration.py), metrics, params, the Delta version of the
training set it was fitted on, the code version and plots. ``current`` moves to
a new version only if its test metric is not worse than the current one's (by more than
``min_delta``), so a bad retrain never reaches scoring.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from shopperlake.core.config import Config
from shopperlake.core.errors import InputError
from shopperlake.core.storage import Storage

log = logging.getLogger(__name__)
_VERSION = re.compile(r"^v(\d{4,})$")


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    path: Path

    def read_json(self, file: str) -> Any:
        return json.loads((self.path / file).read_text())


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def from_config(cls, cfg: Config, lake_root: str) -> Registry:
        """The registry at ``registry.root`` (default ``<lake root>/models``)."""
        return cls(Storage.from_config(cfg, lake_root).models)

    def versions(self, name: str) -> list[str]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        found = [p.name for p in folder.iterdir() if p.is_dir() and _VERSION.match(p.name)]
        return sorted(found, key=lambda v: int(v[1:]))

    def new_version(self, name: str) -> ModelVersion:
        existing = self.versions(name)
        number = int(existing[-1][1:]) + 1 if existing else 1
        version = f"v{number:04d}"
        path = self.root / name / version
        path.mkdir(parents=True, exist_ok=False)
        return ModelVersion(name, version, path)

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        """A version, or the ``current`` one when ``version`` is None."""
        if version is None:
            version = self.current(name)
            if version is None:
                raise InputError(f"model '{name}' has no current version: run train first")
        path = self.root / name / version
        if not (path / "params.json").is_file():
            raise InputError(f"model '{name}' version {version} not found in {self.root}")
        return ModelVersion(name, version, path)

    def current(self, name: str) -> str | None:
        pointer = self.root / name / "current"
        return pointer.read_text().strip() if pointer.is_file() else None

    def set_current(self, name: str, version: str) -> None:
        pointer = self.root / name / "current"
        tmp = pointer.with_suffix(".tmp")
        tmp.write_text(version + "\n")
        os.replace(tmp, pointer)  # atomic on POSIX: readers see the old or the new pointer

    def promote_if_not_worse(
        self,
        mv: ModelVersion,
        metric: str,
        value: float,
        min_delta: float,
        key: Sequence[str] = ("test", "dnn"),
    ) -> tuple[bool, float | None]:
        """Move ``current`` to ``mv`` unless the current version's ``metric`` is better by more
        than ``min_delta``. Returns (promoted, current value before).

        The current value is ``metrics.json[key[0]][key[1]]...[metric]``; a current version
        without it (another evaluation protocol) is not comparable, and ``mv`` is promoted."""
        cur = self.current(mv.name)
        if cur is None or cur == mv.version:
            self.set_current(mv.name, mv.version)
            return True, None
        found: Any = self.get(mv.name, cur).read_json("metrics.json")
        for part in (*key, metric):
            found = found.get(part) if isinstance(found, dict) else None
        if found is None:
            self.set_current(mv.name, mv.version)
            log.info(
                "promoted %s %s: current %s has no %s %s to compare with",
                mv.name, mv.version, cur, "/".join(key), metric,
            )  # fmt: skip
            return True, None
        before = float(found)
        if value >= before - min_delta:
            self.set_current(mv.name, mv.version)
            log.info("promoted %s %s (%s %.4f >= %.4f)", mv.name, mv.version, metric, value, before)
            return True, before
        log.warning("kept %s %s: new %s %.4f worse than %.4f", mv.name, cur, metric, value, before)
        return False, before

    def discard(self, mv: ModelVersion) -> None:
        shutil.rmtree(mv.path, ignore_errors=True)

    def remove_user_rows(self, user_ids: Sequence[str]) -> dict[str, int]:
        """Drop the rows of ``user_ids`` from every version's CSV file with a ``user_id``
        column (test predictions), for ``erase``; rows removed per model."""
        removed: dict[str, int] = {}
        if not self.root.is_dir():
            return removed
        for csv in sorted(self.root.glob("*/v*/*.csv")):
            frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
            if "user_id" not in frame.columns:
                continue
            hit = frame["user_id"].isin(list(user_ids))
            if hit.any():
                frame[~hit].to_csv(csv, index=False)
                model = csv.parent.parent.name
                removed[model] = removed.get(model, 0) + int(hit.sum())
        return removed
