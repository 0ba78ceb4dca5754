"""The code location's resources: each one's fields are what it acts on (a Kafka client of the brokers it
names, the catalog it names, the Flink endpoint, the stack's folder, the checks' limits), run configuration of
a field takes effect, and resources built from the settings act exactly as the settings say. No service is
needed: the catalog is a SQLite file, the topic's offsets a stand-in."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from config.settings import load_settings
from dagster_project.defs.ingest.assets import http_events_topic, observe_sources_job
from dagster_project.resources import (
    DbtResource,
    FlinkResource,
    IcebergResource,
    KafkaResource,
    PartitionStats,
    StackResource,
    TableStats,
    ThresholdsResource,
    TopicOffsets,
    build_resources,
)
from event_log import topic
from flink_jobs import JOBS
from lakehouse import iceberg
from lakehouse.contract import HTTP_EVENTS

GROUP = JOBS["streaming"].consumer_group


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("PIPELINE_"):
            monkeypatch.delenv(key)


@pytest.fixture
def looks(monkeypatch) -> list[dict[str, object]]:
    """Each look at the topic: the client settings and topic it was asked with (it answers 6 new events of 10,
    the streaming job's group 3 behind)."""
    seen: list[dict[str, object]] = []

    def offsets(client, name, groups=(), window_seconds=60):
        seen.append({"client": dict(client), "topic": name, "groups": list(groups)})
        return TopicOffsets(end={0: 10}, since={0: 4}, since_ms=0, committed={GROUP: {0: 7}})

    monkeypatch.setattr(topic, "topic_offsets", offsets)
    return seen


def test_a_kafka_resource_reads_the_brokers_and_topic_of_its_fields(looks):
    kafka = KafkaResource(bootstrap_servers="broker-a:19092,broker-b:19092", topic="events", client={"acks": "all"})
    assert kafka.client_config() == {"bootstrap.servers": "broker-a:19092,broker-b:19092", "acks": "all"}
    offsets = kafka.offsets([GROUP])
    assert offsets.lag(GROUP) == 3
    assert looks == [{"client": kafka.client_config(), "topic": "events", "groups": [GROUP]}]


def test_run_config_of_a_resource_field_takes_effect(looks):
    defs = dg.Definitions(
        assets=[http_events_topic],
        jobs=[observe_sources_job],
        resources={"kafka": KafkaResource(bootstrap_servers="127.0.0.1:9092", topic="http_events")},
    )
    job = defs.resolve_job_def("observe_sources_job")
    assert job.execute_in_process().success
    # what the launchpad offers is the resource's configuration as built; a user changes a value of it
    run_config = {"resources": {"kafka": {"config": {"bootstrap_servers": "elsewhere:29092", "topic": "http_events"}}}}
    observed = job.execute_in_process(run_config=run_config)
    assert observed.success
    assert [look["client"]["bootstrap.servers"] for look in looks] == ["127.0.0.1:9092", "elsewhere:29092"]
    [observation] = [e.asset_observation_data.asset_observation for e in observed.get_asset_observation_events()]
    assert observation.metadata["consumer_lag/streaming"] == dg.MetadataValue.int(3)
    assert observation.metadata["events_per_second"] == dg.MetadataValue.float(0.1)


def test_an_iceberg_resource_opens_the_catalog_of_its_fields(tmp_path: Path):
    uri, warehouse = f"jdbc:sqlite:{tmp_path}/catalog.db", (tmp_path / "warehouse").as_uri()
    lake = IcebergResource(catalog_name="elsewhere", catalog="jdbc", uri=uri, warehouse=warehouse, properties={})
    assert lake.pipeline_settings().iceberg.catalog_name == "elsewhere"
    properties = lake.catalog_properties()
    assert properties["uri"] == f"sqlite:///{tmp_path}/catalog.db?timeout=30" and properties["warehouse"] == warehouse
    # a table of that catalog, read back through the resource as typed stats
    iceberg.ensure_tables(lake.pipeline_settings(), [HTTP_EVENTS])
    table = iceberg.load(lake.pipeline_settings()).load_table(HTTP_EVENTS.identifier)
    day = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)
    rows = [
        {"event_id": f"e{i}", "event_time": day, "service": "shop", "method": "GET", "route": "/", "path": "/",
         "status_code": 200, "duration_ms": 1.0}
        for i in range(3)
    ]  # fmt: skip
    table.append(pa.Table.from_pylist(rows, schema=table.schema().as_arrow()))
    stats = lake.table_stats(HTTP_EVENTS.identifier)
    assert isinstance(stats, TableStats) and stats.rows == 3 and stats.files == 1 and stats.snapshots == 1
    assert stats.location.startswith(warehouse) and stats.committed_at_ms and stats.snapshot_id is not None
    [(key, partition)] = lake.day_partitions(HTTP_EVENTS.identifier).items()
    assert key == day.date().isoformat()
    assert partition == PartitionStats(day=day.date(), rows=3, files=1, last_commit_ms=partition.last_commit_ms)
    assert lake.appended_rows(HTTP_EVENTS.identifier, day) == 3


def test_a_flink_resource_reaches_the_endpoint_of_its_fields():
    embedded = FlinkResource(host="10.0.0.7", rest_port=18081)
    assert embedded.url == embedded.pipeline_settings().flink.url == "http://10.0.0.7:18081"
    remote = FlinkResource(host="127.0.0.1", rest_port=8081, rest_url="https://flink.example/")
    assert remote.url == "https://flink.example"


def test_a_stack_resource_looks_at_the_stack_under_its_var_dir(tmp_path: Path):
    stack = StackResource(var_dir=str(tmp_path))
    assert stack.pipeline_settings().run_dir == tmp_path / "run"
    assert stack.restarted_at("flink-jobmanager") is None  # no supervisor ever ran there


def test_a_dbt_resource_runs_dbt_on_the_lake_of_its_fields(tmp_path: Path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("DBT_")]:
        monkeypatch.delenv(key)
    dbt = build_resources(load_settings())["dbt"]
    assert isinstance(dbt, DbtResource)
    lambda_dbt = DbtResource(
        project_dir=dbt.project_dir, dbt_executable=dbt.dbt_executable, pipeline_mode="lambda",
        var_dir=str(tmp_path), memory_limit="3g", threads=5,
    )  # fmt: skip
    assert lambda_dbt.pipeline_vars()["pipeline_mode"] == "lambda"
    with lambda_dbt.lake_environment():
        assert os.environ["DBT_DUCKDB_PATH"] == str(tmp_path / "dbt" / "lake.duckdb")
        assert os.environ["DBT_DUCKDB_MEMORY_LIMIT"] == "3g" and os.environ["DBT_THREADS"] == "5"
    assert "DBT_DUCKDB_PATH" not in os.environ  # this process's environment as it was


def test_unset_thresholds_are_read_when_the_checks_run_and_set_ones_win(monkeypatch):
    unset, set_ = ThresholdsResource(), ThresholdsResource(max_consumer_lag=7)
    assert unset.limits() == load_settings().checks
    monkeypatch.setenv("PIPELINE_CHECKS__MAX_CONSUMER_LAG", "5")
    assert unset.limits().max_consumer_lag == 5 and set_.limits().max_consumer_lag == 7
    assert set_.limits().freshness_minutes == load_settings().checks.freshness_minutes


def test_resources_built_from_the_settings_act_as_the_settings_say(monkeypatch, tmp_path: Path):
    """Their configuration is exactly the settings' (the supervisor, which a recovery may start, compares it)."""
    monkeypatch.setenv("PIPELINE_KAFKA__BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("PIPELINE_FLINK__REST_PORT", "18081")
    monkeypatch.setenv("PIPELINE_PATHS__VAR_DIR", str(tmp_path))
    settings = load_settings()
    resources = build_resources(settings)
    kafka = resources["kafka"]
    assert isinstance(kafka, KafkaResource) and kafka.client_config() == topic.client_config(settings)
    assert kafka.topic == settings.kafka.topic
    for key in ("flink", "iceberg", "stack", "dbt"):
        built = resources[key].pipeline_settings()  # type: ignore[attr-defined]
        assert built.model_dump_json() == settings.model_dump_json(), key
