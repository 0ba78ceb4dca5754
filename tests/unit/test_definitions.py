"""The Dagster code location: what each mode assembles (assets, checks, jobs, schedules, sensors), and a wrong
mode fails naming the key and the allowed values. No service is needed to load it."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from config.settings import ConfigError, load_settings
from dagster_project.definitions import build_definitions
from dagster_project.defs.ingest.assets import topic_metadata
from dagster_project.defs.lake.assets import partition_metadata, stats_metadata
from dagster_project.resources import PartitionStats, TableStats, TopicOffsets
from lakehouse import contract

JOBS = {"flink/streaming"}
REPLAYED = {
    "iceberg/speed/api_requests_per_minute",
    "iceberg/speed/api_traffic_sliding_5m",
    "iceberg/speed/user_sessions",
    "iceberg/speed/api_daily_running_totals",
}
STREAMED_ONLY = {
    "iceberg/raw/http_events",
    "iceberg/raw/dead_letter_events",
    "iceberg/raw/late_events",
    "iceberg/speed/requests_per_route_minute_firings",
    "iceberg/speed/checkout_funnels",
}
BATCH = {
    "api_requests_per_minute",
    "api_traffic_sliding_5m",
    "user_sessions",
    "api_daily_running_totals",
    "requests_per_route_minute",
    "checkout_funnels",
}


@pytest.fixture(params=["kappa", "lambda"])
def mode_defs(request, monkeypatch):
    monkeypatch.setenv("PIPELINE_PIPELINE__MODE", request.param)
    return request.param, build_definitions(load_settings())


def _graph(defs: dg.Definitions):
    graph = defs.resolve_asset_graph()
    return graph, {k.to_user_string(): k for k in graph.get_all_asset_keys()}


def _parents(graph, keys, name: str) -> set[str]:
    return {p.to_user_string() for p in graph.get(keys[name]).parent_keys}


def test_the_lineage_reads_topic_jobs_tables_dbt(mode_defs):
    _, defs = mode_defs
    graph, keys = _graph(defs)
    assert {"kafka/http_events", *JOBS, *REPLAYED, *STREAMED_ONLY} <= set(keys)
    for job in JOBS:
        assert _parents(graph, keys, job) == {"kafka/http_events"}
        assert graph.get(keys[job]).is_materializable and graph.get(keys[job]).code_version
    assert _parents(graph, keys, "iceberg/raw/http_events") == {"flink/streaming"}
    assert _parents(graph, keys, "iceberg/raw/late_events") == {"flink/streaming"}
    assert _parents(graph, keys, "iceberg/speed/checkout_funnels") == {"flink/streaming"}
    # dbt sources are the Iceberg tables' assets; dbt tests are asset checks
    assert _parents(graph, keys, "dbt/stg_http_events") == {"iceberg/raw/http_events"}
    assert "dbt/api_health_daily" in keys and "dbt/serving_api_requests_per_minute" in keys
    checks = {c.name for c in graph.asset_check_keys}
    assert "unique_within_stg_http_events_event_id" in checks
    # the tables are partitioned by day, from dagster.first_day to the last complete day
    for name in REPLAYED | STREAMED_ONLY:
        partitions = graph.get(keys[name]).partitions_def
        assert isinstance(partitions, dg.DailyPartitionsDefinition), name
        assert partitions.get_first_partition_key() == "2026-01-01"


def test_the_streaming_checks_cover_every_table_and_job(mode_defs):
    _, defs = mode_defs
    graph, _ = _graph(defs)
    by_name: dict[str, set[str]] = {}
    for check in graph.asset_check_keys:
        by_name.setdefault(check.name, set()).add(check.asset_key.to_user_string())
    assert by_name["freshness"] == REPLAYED | STREAMED_ONLY
    assert by_name["consumer_lag"] == JOBS
    assert by_name["dead_letter_rate"] == {"iceberg/raw/dead_letter_events"}
    assert by_name["late_rate"] == {"iceberg/raw/late_events"}


def test_each_mode_assembles_its_own_layer(mode_defs):
    mode, defs = mode_defs
    graph, keys = _graph(defs)
    schedules = {s.name for s in defs.schedules}
    sensors = {s.name: s for s in defs.sensors}
    assert {"dbt_build_schedule", "table_maintenance_schedule"} <= schedules
    assert set(sensors) == {"flink_jobs_on_failure", "services_on_failure", "streaming_on_staleness_or_lag"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    replayed = {name for name in REPLAYED if graph.get(keys[name]).is_materializable}
    batch_models = {name for name in keys if name.startswith("dbt/batch_")}
    if mode == "kappa":
        # a backfill of these day partitions is a Flink batch replay; there is no batch layer
        assert replayed == REPLAYED
        assert all(_parents(graph, keys, name) == {"flink/streaming", "iceberg/raw/http_events"} for name in REPLAYED)
        assert batch_models == set() and not any(name.startswith("iceberg/batch/") for name in keys)
        assert "dbt/reconciliation_daily" not in keys and "batch_layer_schedule" not in schedules
    else:
        # the stream writes speed.*; a backfill of a day is the dbt batch layer, published into Iceberg batch.*
        assert replayed == set()
        assert batch_models == {f"dbt/batch_{m}" for m in BATCH}
        for measure in BATCH:
            assert _parents(graph, keys, f"iceberg/batch/{measure}") == {f"dbt/batch_{measure}"}
            assert f"iceberg/batch/{measure}" in _parents(graph, keys, f"dbt/serving_{measure}")
        partitions = graph.get(keys["dbt/batch_user_sessions"]).partitions_def
        assert partitions is not None and partitions.get_first_partition_key() == "2026-01-01"
        assert graph.get(keys["dbt/api_health_daily"]).partitions_def is None
        assert "dbt/reconciliation_daily" in keys and "batch_layer_schedule" in schedules
        checks = {c.name for c in graph.asset_check_keys if c.asset_key == keys["dbt/reconciliation_daily"]}
        assert any("tolerance" in c for c in checks), checks


def test_the_batch_schedule_asks_for_yesterday(monkeypatch):
    monkeypatch.setenv("PIPELINE_PIPELINE__MODE", "lambda")
    defs = build_definitions(load_settings())
    schedule = next(s for s in defs.schedules if s.name == "batch_layer_schedule")
    repository = defs.get_repository_def()

    def at(moment: datetime) -> dg.ScheduleEvaluationContext:
        return dg.build_schedule_context(scheduled_execution_time=moment, repository_def=repository)

    [request] = schedule.evaluate_tick(at(datetime(2026, 11, 25, 0, 30, tzinfo=UTC))).run_requests or []
    assert request.partition_key == "2026-11-24" and request.run_key == "2026-11-24"
    before = at(datetime(2026, 1, 1, 0, 30, tzinfo=UTC))
    assert not schedule.evaluate_tick(before).run_requests  # no complete day since dagster.first_day


def test_a_wrong_mode_fails_naming_the_key_and_the_allowed_values(monkeypatch):
    monkeypatch.setenv("PIPELINE_PIPELINE__MODE", "lambada")
    allowed = r"pipeline\.mode: 'lambada' is not allowed \(allowed values: 'lambda' or 'kappa'\)"
    with pytest.raises(ConfigError, match=allowed):
        build_definitions(load_settings())


def test_every_pool_the_assets_use_is_limited_when_dagster_starts(mode_defs):
    from infra.services.dagster import POOLS

    mode, defs = mode_defs
    graph = defs.resolve_asset_graph()
    used = {getattr(a.node_def, "pool", None) for a in graph.assets_defs if a.is_executable} - {None}
    assert used == ({"flink_replay", "duckdb"} if mode == "kappa" else {"duckdb"})
    assert used <= set(POOLS)


def test_the_stacks_code_server_serves_the_location_pyproject_names(tmp_path, monkeypatch):
    import tomllib

    import yaml

    from config.settings import REPO_ROOT
    from infra.services import dagster as service

    entry = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["dagster"]
    assert entry["module_name"] == service.CODE_MODULE == "dagster_project.definitions"
    assert entry["code_location_name"] == service.LOCATION_NAME
    # what `make up` writes for the webserver and the daemon: the one code server, on its configured port
    monkeypatch.setenv("PIPELINE_PATHS__VAR_DIR", str(tmp_path))
    monkeypatch.setenv("PIPELINE_DAGSTER__CODE_SERVER_PORT", "4123")
    settings = load_settings()
    service.write_instance_files(settings)
    [served] = yaml.safe_load(service.workspace_file(settings).read_text())["load_from"]
    assert served == {"grpc_server": {"host": "127.0.0.1", "port": 4123, "location_name": service.LOCATION_NAME}}
    code_server, webserver, daemon = service.processes(settings)
    assert code_server.argv[code_server.argv.index("-p") + 1] == "4123"
    assert code_server.argv[code_server.argv.index("-m") + 1] == service.CODE_MODULE
    for proc in (webserver, daemon):
        assert proc.argv[proc.argv.index("-w") + 1] == str(service.workspace_file(settings))


def test_every_job_runs_its_steps_in_the_run_worker(mode_defs):
    # a process per step would load the whole code location again beside the run worker (README, "Measured")
    _, defs = mode_defs
    names = [job.name for job in defs.resolve_all_job_defs()]
    assert "dbt_build_job" in names
    for name in names:
        assert defs.resolve_job_def(name).executor_def.name == dg.in_process_executor.name, name


def test_the_table_assets_show_their_name_and_columns_from_the_contract(mode_defs):
    mode, defs = mode_defs
    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    tables = [t for t in contract.TABLES if t.streamed or mode == "lambda"]
    for table in tables:
        metadata = specs[f"iceberg/{table.layer}/{table.name}"].metadata
        assert metadata["dagster/table_name"] == f"lake.{table.identifier}"
        columns = metadata["dagster/column_schema"].value.columns
        assert [c.name for c in columns] == [f.name for f in table.schema.fields]
        for column, field in zip(columns, table.schema.fields, strict=True):
            assert column.type == str(field.field_type) and column.description == field.doc
            assert column.constraints.nullable == (not field.required)


def test_observations_carry_numbers_dagster_plots_and_its_standard_keys():
    stats = TableStats("file:///lake/raw.db/http_events", 7, 1_700_000_000_000, rows=42, files=3, snapshots=2)
    table = stats_metadata(stats)
    assert table["dagster/row_count"] == dg.MetadataValue.int(42) and table["data_files"] == dg.MetadataValue.int(3)
    assert table["dagster/uri"].value == "file:///lake/raw.db/http_events"
    assert table["dagster/last_updated_timestamp"] == dg.MetadataValue.timestamp(1_700_000_000.0)
    day = partition_metadata(PartitionStats(datetime(2026, 1, 2).date(), rows=5, files=1, last_commit_ms=0))
    assert day["dagster/partition_row_count"] == dg.MetadataValue.int(5)
    offsets = TopicOffsets(end={0: 130, 1: 70}, since={0: 100, 1: 40}, since_ms=0, committed={})
    topic = topic_metadata("http_events", offsets)
    assert topic["events_per_second"] == dg.MetadataValue.float(1.0)
    assert topic["end_offset_total"] == dg.MetadataValue.int(200) and topic["consumer_lag/streaming"].value == -1
