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


@pytest.mark.parametrize("mode", ["kappa", "lambda"])
def test_dbt_models_are_assets_on_the_iceberg_tables_and_lambda_adds_the_partitioned_batch_layer(monkeypatch, mode):
    monkeypatch.setenv("PIPELINE_PIPELINE__MODE", mode)
    defs = build_definitions(load_settings())
    graph = defs.resolve_asset_graph()
    by_name = {k.to_user_string(): k for k in graph.get_all_asset_keys()}
    # a dbt source is the Iceberg table's asset: lineage runs topic -> job -> table -> staging -> marts
    staging = graph.get(by_name["dbt/stg_http_events"])
    assert {p.to_user_string() for p in staging.parent_keys} == {"iceberg/raw/http_events"}
    assert "dbt/api_health_daily" in by_name and "dbt/serving_api_requests_per_minute" in by_name
    batch = {name for name in by_name if name.startswith("dbt/batch_")}
    checks = {c.name for c in graph.asset_check_keys}
    assert "unique_stg_http_events_event_id" in checks  # dbt tests are asset checks
    if mode == "kappa":
        assert batch == set() and "dbt/reconciliation_daily" not in by_name
    else:
        assert len(batch) == 6 and "dbt/reconciliation_daily" in by_name
        partitions = graph.get(by_name["dbt/batch_user_sessions"]).partitions_def
        assert partitions is not None and partitions.get_first_partition_key() == "2026-01-01"
        assert graph.get(by_name["dbt/api_health_daily"]).partitions_def is None
