"""Layered config: base → env → overrides; unknown or missing keys are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopperlake.core.config import load_config
from shopperlake.core.errors import ConfigError


def test_local_overlay_and_override_layering() -> None:
    cfg = load_config(
        "local", ["ingest.max_price=5000.0", "spark.conf.spark.sql.shuffle.partitions=3"]
    )
    assert cfg.get("spark.master") == "local[*]"  # from local.yaml
    assert cfg.get("ingest.min_ts") == "1990-01-01"  # from base.yaml
    assert cfg.get("ingest.max_price") == 5000.0  # from the override
    assert cfg.get("spark.conf")["spark.sql.shuffle.partitions"] == 3
    assert cfg.get("spark.conf")["spark.sql.session.timeZone"] == "UTC"


def test_cluster_env_hardcodes_no_master() -> None:
    cfg = load_config("cluster")
    assert cfg.get("spark.master") is None
    assert cfg.get("spark.jars_dir") is None
    assert cfg.get("spark.packages") == ["io.delta:delta-spark_2.12:3.3.2"]


def test_unknown_key_in_override_is_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown config key 'ingest.max_prize'"):
        load_config("local", ["ingest.max_prize=10"])


def test_wrong_type_is_an_error() -> None:
    with pytest.raises(ConfigError, match="'ingest.max_quantity' must be int"):
        load_config("local", ["ingest.max_quantity=lots"])


def test_malformed_override_is_an_error() -> None:
    with pytest.raises(ConfigError, match="must look like key.path=value"):
        load_config("local", ["ingest.max_price"])


def test_unknown_environment_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown environment 'prod'.*local"):
        load_config("prod")


def test_missing_required_key_and_unknown_key_in_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "base.yaml").write_text("lake:\n  root: ???\nspark:\n  conf: {}\n")
    (conf / "dev.yaml").write_text("spark:\n  conf: {spark.x: 1}\n")
    (conf / "typo.yaml").write_text("lake:\n  rot: /tmp/x\n")
    monkeypatch.setenv("SHOPPERLAKE_CONF_DIR", str(conf))
    with pytest.raises(ConfigError, match=r"missing required config key\(s\): lake.root"):
        load_config("dev")
    assert load_config("dev", ["lake.root=/data/lake"]).get("lake.root") == "/data/lake"
    with pytest.raises(ConfigError, match=r"conf/typo.yaml: unknown config key 'lake.rot'"):
        load_config("typo")
    (conf / "bad.yaml").write_text("lake: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config("bad")


def test_section_dataclass_converts_by_field_type_and_names_bad_keys() -> None:
    from dataclasses import dataclass

    from shopperlake.core.config import section_dataclass

    @dataclass(frozen=True)
    class Knobs:
        n: int = 1
        rate: float = 0.5
        flag: bool = False
        name: str = "x"

    got = section_dataclass(Knobs, {"n": "3", "rate": "0.25", "flag": "true"}, "a.b")
    assert got == Knobs(n=3, rate=0.25, flag=True, name="x")
    with pytest.raises(ConfigError, match=r"a\.b: unknown key\(s\) \['nope'\]"):
        section_dataclass(Knobs, {"nope": 1}, "a.b")
    with pytest.raises(ConfigError, match=r"a\.b\.n: 'many' is not int"):
        section_dataclass(Knobs, {"n": "many"}, "a.b")
    with pytest.raises(ConfigError, match=r"a\.b\.flag: 'maybe' is not bool"):
        section_dataclass(Knobs, {"flag": "maybe"}, "a.b")
