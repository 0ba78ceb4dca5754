"""The Dagster code location loads in both modes and shows the topic, the job and the tables."""

from __future__ import annotations

import pytest

from dagster_project.definitions import build_definitions
from infra.config import load_settings


@pytest.mark.parametrize("mode", ["kappa", "lambda"])
def test_definitions_load(monkeypatch, mode):
    monkeypatch.setenv("PIPELINE_PIPELINE__MODE", mode)
    defs = build_definitions(load_settings())
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {
        "kafka/http_events",
        "flink/raw_events",
        "iceberg/raw/http_events",
        "iceberg/raw/dead_letter_events",
    } <= keys
    graph = defs.resolve_asset_graph()
    table = graph.get(next(k for k in graph.get_all_asset_keys() if k.to_user_string() == "iceberg/raw/http_events"))
    assert {p.to_user_string() for p in table.parent_keys} == {"flink/raw_events"}
