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
    if config.source.bounded:
        # a run over a file or a replay fails with its first error instead of restarting in a loop
        conf.set("restart-strategy.type", "none")
    if streaming:
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
