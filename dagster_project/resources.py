"""One ConfigurableResource per external system. Values come from the project's configuration
(pipeline.yaml / PIPELINE_* environment, read once by `infra.config.load_settings`)."""

from __future__ import annotations

from typing import Any

import dagster as dg

from infra.config import Settings, load_settings


class KafkaResource(dg.ConfigurableResource):
    """The Kafka cluster and the events topic."""

    bootstrap_servers: str
    topic: str

    def end_offsets(self) -> dict[int, int]:
        from infra.services import kafka

        return kafka.topic_end_offsets(_settings())


class FlinkResource(dg.ConfigurableResource):
    """The Flink cluster's REST API, and the `flink` CLI (through infra) for submitting Python jobs."""

    rest_url: str

    def deploy(self, job: str) -> Any:
        from infra.services import flink_jobs

        return flink_jobs.deploy(_settings(), job)

    def find_job(self, job: str) -> dict[str, Any] | None:
        from infra.services import flink_jobs

        return flink_jobs.find_job(_settings(), job)

    def code_version(self, job: str) -> str:
        from infra.services import flink_jobs

        return flink_jobs.code_version(job)


class IcebergResource(dg.ConfigurableResource):
    """The Iceberg catalog `lake` (the same catalog Flink writes through)."""

    catalog_name: str
    warehouse: str

    def load_table(self, identifier: str) -> Any:
        from infra import iceberg

        return iceberg.load(_settings()).load_table(identifier)


def _settings() -> Settings:
    return load_settings()


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    return {
        "kafka": KafkaResource(bootstrap_servers=settings.kafka.servers, topic=settings.kafka.topic),
        "flink": FlinkResource(rest_url=settings.flink.url),
        "iceberg": IcebergResource(catalog_name=settings.iceberg.catalog_name, warehouse=settings.warehouse),
    }
