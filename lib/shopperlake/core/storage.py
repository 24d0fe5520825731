"""Where the state that is not a Delta table lives, resolved from config in one place: the
model registry (``registry.root``, default ``<lake root>/models``) and the Petastorm cache
(``training.cache``, default ``<lake root>/_petastorm_cache``). Delta tables go through
:class:`shopperlake.core.lake.Lake`; everything else a job persists goes under these two.

The registry keeps Keras files, JSON and CSV side by side and needs a local or mounted path
(a ``file:`` URI or a folder; on a cluster, a shared mount); the cache is any URI Petastorm
writes to (``file:``, ``hdfs:``, ``s3a:`` ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from shopperlake.core.config import Config
from shopperlake.core.errors import LakeError
from shopperlake.core.lake import normalise_root


def local_path(uri: str, what: str) -> Path:
    """The local path of a folder or ``file:`` URI; a clear error for a remote one."""
    parsed = urlparse(uri)
    if parsed.scheme and len(parsed.scheme) > 1 and parsed.scheme != "file":
        raise LakeError(
            f"the {what} needs a local or mounted path, not {uri} (set registry.root to a "
            "mounted folder)"
        )
    return Path(parsed.path if parsed.scheme == "file" else uri).expanduser().resolve()


@dataclass(frozen=True)
class Storage:
    models: Path  # the model registry's root folder
    cache: str  # the Petastorm cache, a URI

    @classmethod
    def from_config(cls, cfg: Config, lake_root: str) -> Storage:
        root = normalise_root(lake_root)
        models = cfg.get("registry.root") or f"{root}/models"
        configured_cache = cfg.get("training.cache")
        if configured_cache:
            cache = str(configured_cache)
        elif urlparse(root).scheme and len(urlparse(root).scheme) > 1:
            cache = f"{root}/_petastorm_cache"
        else:
            cache = (Path(root) / "_petastorm_cache").as_uri()
        return cls(local_path(str(models), "model registry"), cache)
