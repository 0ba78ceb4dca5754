"""The configuration fails at start-up naming the key and the allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("PIPELINE_"):
            monkeypatch.delenv(key)


def test_defaults_are_valid_and_derive_locations():
    settings = load_settings()
    assert settings.pipeline.mode == "kappa"
    assert settings.kafka.servers == "127.0.0.1:9092"
    assert settings.flink.url == "http://127.0.0.1:8081"
    assert settings.embedded_postgres
    assert settings.catalog_jdbc_uri == "jdbc:postgresql://127.0.0.1:5433/iceberg"
    assert settings.warehouse.startswith("file://") and settings.warehouse.endswith("/var/iceberg/warehouse")


def test_a_sqlite_catalog_path_is_relative_to_the_repository(monkeypatch):
    from config.settings import REPO_ROOT

    monkeypatch.setenv("PIPELINE_ICEBERG__URI", "jdbc:sqlite:var/iceberg/catalog.db")
    settings = load_settings()
    assert not settings.embedded_postgres
    assert settings.catalog_jdbc_uri == f"jdbc:sqlite:{REPO_ROOT / 'var' / 'iceberg' / 'catalog.db'}"


def test_environment_overrides_yaml(monkeypatch):
    monkeypatch.setenv("PIPELINE_PIPELINE__MODE", "lambda")
    monkeypatch.setenv("PIPELINE_KAFKA__PORT", "19092")
    settings = load_settings()
    assert settings.pipeline.mode == "lambda"
    assert settings.kafka.servers == "127.0.0.1:19092"


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        (
            "PIPELINE_PIPELINE__MODE",
            "lamda",
            ["pipeline.mode", "'lamda' is not allowed", "'lambda' or 'kappa'"],
        ),
        ("PIPELINE_KAFKA__MODE", "cloud", ["kafka.mode", "'embedded' or 'external'"]),
        ("PIPELINE_FLINK__MODE", "yarn", ["flink.mode", "'embedded' or 'remote'"]),
        ("PIPELINE_ICEBERG__CATALOG", "hive", ["iceberg.catalog", "'jdbc' or 'rest'"]),
        ("PIPELINE_KAFKA__PORT", "99999", ["kafka.port", "between 1 and 65535"]),
        ("PIPELINE_DAGSTER__PORT", "0", ["dagster.port", "between 1 and 65535"]),
        ("PIPELINE_KAFKA__PARTITIONS", "0", ["kafka.partitions", "greater than or equal to 1"]),
        ("PIPELINE_FLINK__TASKMANAGER_MEMORY", "lots", ["flink.taskmanager_memory", "512m or 2g"]),
        (
            "PIPELINE_FLINK__CHECKPOINT_INTERVAL_SECONDS",
            "soon",
            ["flink.checkpoint_interval_seconds", "integer"],
        ),
        ("PIPELINE_TRAFFIC__RATE", "-5", ["traffic.rate", "greater than 0"]),
        ("PIPELINE_DEMO__ENABLED", "perhaps", ["demo.enabled", "boolean"]),
        ("PIPELINE_KAFKA__PROT", "1", ["kafka.prot", "unknown key", "allowed keys:", "port"]),
        ("PIPELINE_FLINK__MODE", "remote", ["flink.rest_url is required when flink.mode is 'remote'"]),
        ("PIPELINE_KAFKA__MODE", "external", ["kafka.bootstrap_servers is required"]),
        ("PIPELINE_ICEBERG__URI", "sqlite:///x.db", ["iceberg.uri must be a JDBC URL"]),
    ],
)
def test_invalid_value_names_the_key(monkeypatch, env, value, expected):
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    for fragment in expected:
        assert fragment in str(err.value)


def test_unknown_section_and_key_in_yaml(tmp_path: Path, monkeypatch):
    config = tmp_path / "pipeline.yaml"
    config.write_text("pipeline:\n  mode: kappa\n  modee: lambda\nflinkk:\n  parallelism: 2\n")
    monkeypatch.setenv("PIPELINE_CONFIG", str(config))
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert "pipeline.modee: unknown key (allowed keys: mode)" in message
    assert "flinkk: unknown key" in message and "kafka" in message


def test_yaml_values_are_read(tmp_path: Path, monkeypatch):
    config = tmp_path / "pipeline.yaml"
    config.write_text("pipeline:\n  mode: lambda\nflink:\n  parallelism: 2\n")
    monkeypatch.setenv("PIPELINE_CONFIG", str(config))
    settings = load_settings()
    assert (settings.pipeline.mode, settings.flink.parallelism) == ("lambda", 2)


def test_missing_config_file_is_an_error(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PIPELINE_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="PIPELINE_CONFIG: no such file"):
        load_settings()


def test_broken_yaml_is_an_error(tmp_path: Path, monkeypatch):
    config = tmp_path / "pipeline.yaml"
    config.write_text("kafka: [unclosed\n")
    monkeypatch.setenv("PIPELINE_CONFIG", str(config))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings()


def test_every_key_of_the_shipped_yaml_is_documented():
    import yaml

    from config.settings import DEFAULT_CONFIG_FILE, REPO_ROOT

    readme = (REPO_ROOT / "docs" / "configuration.md").read_text()
    shipped = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text())
    settings = load_settings()
    for section in type(settings).model_fields:
        for key in type(getattr(settings, section)).model_fields:
            assert f"`{section}.{key}`" in readme, f"{section}.{key} is not in docs/configuration.md"
    assert set(shipped) <= set(type(settings).model_fields)
