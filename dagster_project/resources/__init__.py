"""The code location's resources, one per external system, holding their configuration as fields
(`build_resources` makes them from the pipeline's settings), and the typed results that cross from them into the
definitions. They are the only modules of the code location that use the platform's own client code (infra,
event_log, the lake's catalog, maintenance and dbt runner)."""

from __future__ import annotations

import dagster as dg

from config.settings import Settings
from dagster_project.resources.dbt import EXECUTABLE, PROJECT_DIR, DbtResource, dbt_project
from dagster_project.resources.flink import FlinkResource
from dagster_project.resources.iceberg import IcebergResource
from dagster_project.resources.kafka import KafkaResource
from dagster_project.resources.stack import SUPERVISOR, StackResource
from dagster_project.resources.thresholds import ThresholdsResource
from event_log.topic import TopicOffsets
from infra.flink_deploy import DeployResult, JobStatus
from infra.process import ServiceError
from infra.status import ServiceReport, StackReport
from lakehouse.iceberg import PartitionStats, TableStats
from lakehouse.maintenance import Options as MaintenanceOptions
from lakehouse.maintenance import TableReport

__all__ = [
    "SUPERVISOR",
    "DbtResource",
    "DeployResult",
    "FlinkResource",
    "IcebergResource",
    "JobStatus",
    "KafkaResource",
    "MaintenanceOptions",
    "PartitionStats",
    "ServiceError",
    "ServiceReport",
    "StackReport",
    "StackResource",
    "TableReport",
    "TableStats",
    "ThresholdsResource",
    "TopicOffsets",
    "build_resources",
    "dbt_project",
]


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Every resource, from the pipeline's settings: each field is the setting it names."""
    return {
        "kafka": KafkaResource(
            bootstrap_servers=settings.kafka.servers, topic=settings.kafka.topic, client=dict(settings.kafka.client)
        ),
        "flink": FlinkResource(
            host=settings.flink.host, rest_port=settings.flink.rest_port, rest_url=settings.flink.rest_url
        ),
        "iceberg": IcebergResource(
            catalog_name=settings.iceberg.catalog_name,
            catalog=settings.iceberg.catalog,
            uri=settings.iceberg.uri,
            warehouse=settings.iceberg.warehouse,
            properties=dict(settings.iceberg.properties),
        ),
        "stack": StackResource(var_dir=str(settings.paths.var_dir)),
        "thresholds": ThresholdsResource(),
        "dbt": DbtResource(
            project_dir=str(PROJECT_DIR),
            dbt_executable=str(EXECUTABLE),
            pipeline_mode=settings.pipeline.mode,
            var_dir=str(settings.paths.var_dir),
            memory_limit=settings.dbt.memory_limit,
            threads=settings.dbt.threads,
        ),
    }
