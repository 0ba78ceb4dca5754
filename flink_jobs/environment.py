"""Table environment, Iceberg catalog and Kafka source options shared by every job."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from flink_jobs import sql_files
from flink_jobs.job_config import IcebergConfig, JobConfig, KafkaConfig, SourceConfig

if TYPE_CHECKING:
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import TableEnvironment


def catalog_options(iceberg: IcebergConfig) -> dict[str, str]:
    options = {"type": "iceberg", "warehouse": iceberg.warehouse, "uri": iceberg.uri}
    if iceberg.catalog == "jdbc":
        options["catalog-impl"] = "org.apache.iceberg.jdbc.JdbcCatalog"
        if iceberg.uri.startswith("jdbc:sqlite:"):
            # SQLite allows one writer at a time: wait for the lock instead of failing a commit
            options["jdbc.busy_timeout"] = "30000"
    else:
        options["catalog-type"] = "rest"
    options.update(iceberg.properties)
    return options


def kafka_source_options(kafka: KafkaConfig) -> dict[str, str]:
    options = {
        "connector": "kafka",
        "topic": kafka.topic,
        "properties.bootstrap.servers": kafka.bootstrap_servers,
        "properties.group.id": kafka.group_id,
        # resume from the group's committed offsets (committed on checkpoints); the first run reads everything
        "scan.startup.mode": "group-offsets",
        "properties.auto.offset.reset": "earliest",
        "properties.isolation.level": "read_committed",
        "format": "raw",
    }
    options.update({f"properties.{k}": v for k, v in kafka.properties.items()})
    return options


def create_table_environment(
    config: JobConfig, *, streaming: bool = True, stream_env: StreamExecutionEnvironment | None = None
) -> TableEnvironment:
    """The job's table environment; over `stream_env` (a StreamTableEnvironment) when the job mixes SQL with
    the DataStream API."""
    from pyflink.table import EnvironmentSettings, StreamTableEnvironment, TableEnvironment

    settings = EnvironmentSettings.in_streaming_mode() if streaming else EnvironmentSettings.in_batch_mode()
    if stream_env is not None:
        t_env: TableEnvironment = StreamTableEnvironment.create(stream_env, settings)
    else:
        t_env = TableEnvironment.create(settings)
    conf = t_env.get_config()
    conf.set("pipeline.name", config.job_name)
    # event times are UTC instants; TIMESTAMP_LTZ columns map to Iceberg timestamptz
    conf.set("table.local-time-zone", "UTC")
    conf.set("parallelism.default", str(config.parallelism))
    # views read by several INSERTs (the parsing, the de-duplication) are planned once and shared: without it each
    # INSERT gets its own copy with only its columns, and the job parses every message and keeps the
    # de-duplication's state once per INSERT
    conf.set("table.optimizer.reuse-optimize-block-with-digest-enabled", "true")
    if config.source.bounded:
        # a run over a file or a replay fails with its first error instead of restarting in a loop
        conf.set("restart-strategy.type", "none")
    if streaming:
        # the de-duplication by event_id (http_events.sql) remembers each id this long; the windows' state is
        # cleared when their windows end, whatever this says
        conf.set("table.exec.state.ttl", f"{config.streaming.dedup_horizon_minutes}min")
        # the Iceberg sink commits once per checkpoint: the interval is the freshness of the tables
        conf.set("execution.checkpointing.interval", f"{config.checkpoint_interval_seconds}s")
        conf.set("execution.checkpointing.mode", "EXACTLY_ONCE")
        # a Kafka partition without events this long stops holding the watermark back
        conf.set("table.exec.source.idle-timeout", f"{config.streaming.idle_timeout_seconds}s")
        if config.source.kind == "file":
            # a watermark after every event that advances it (WatermarkAssignerOperator emits when the
            # watermark moved by more than the interval): lateness over a file is exact and repeatable
            conf.set("pipeline.auto-watermark-interval", "0ms")
            # a file is read on a local mini-cluster: Python UDFs in thread mode embed this interpreter (on a
            # cluster, `flink run -pyexec` names it); without it they look for a `python` on the PATH
            conf.set("python.executable", sys.executable)
    t_env.execute_sql(
        f"CREATE CATALOG {config.iceberg.catalog_name} WITH (\n  "
        f"{sql_files.with_options(catalog_options(config.iceberg))}\n)"
    )
    return t_env


def source_params(config: JobConfig) -> dict[str, str]:
    """Placeholders of sources/<kind>.sql."""
    source: SourceConfig = config.source
    params = {
        "catalog": config.iceberg.catalog_name,
        "out_of_orderness_seconds": str(config.streaming.out_of_orderness_seconds),
    }
    if source.kind == "kafka":
        params["kafka_source_options"] = sql_files.with_options(kafka_source_options(config.require_kafka()))
    elif source.kind == "file":
        params["source_path"] = str(source.path).replace("'", "''")
    return params


def through_datastream(
    t_env: TableEnvironment, view: str, name: str, *, proc_time: str | None = None, watermark: str | None = None
) -> None:
    """Register `name`: the rows of the insert-only `view` through a DataStream and back, the same columns in the
    same order. `event_time` is the event-time attribute again: the watermarks carry over, or, when `watermark`
    names a column, they are that column's newest value (emitted like a source's, every
    `pipeline.auto-watermark-interval`). `proc_time`, when named, is a processing-time attribute again (taken anew
    here). The planner cannot see through a DataStream, so everything before it is shared by whatever reads `name`
    (streaming.py says why that matters)."""
    from pyflink.table import DataTypes, Schema, StreamTableEnvironment

    assert isinstance(t_env, StreamTableEnvironment)
    table = t_env.from_path(view)
    builder = (
        Schema.new_builder()
        .column_by_metadata("__event_time", DataTypes.TIMESTAMP_LTZ(3), "rowtime")
        .watermark("__event_time", f"`{watermark}`" if watermark else "SOURCE_WATERMARK()")
    )
    if proc_time is not None:
        builder = builder.column_by_expression("__proc_time", "PROCTIME()")
    t_env.create_temporary_view(f"{name}__stream", t_env.from_data_stream(t_env.to_data_stream(table), builder.build()))
    renamed = {"event_time": "__event_time", **({proc_time: "__proc_time"} if proc_time else {})}
    columns = ", ".join(
        f"`{renamed[column]}` AS `{column}`" if column in renamed else f"`{column}`"
        for column in table.get_schema().get_field_names()
    )
    t_env.execute_sql(f"CREATE TEMPORARY VIEW `{name}` AS SELECT {columns} FROM `{name}__stream`")
