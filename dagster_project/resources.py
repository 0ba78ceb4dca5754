"""One ConfigurableResource per external system: Kafka, the Flink cluster, the Iceberg catalog, the stack's
processes (dbt's is dagster-dbt's DbtCliResource, built in definitions.py). Each wraps the platform's own client
code in infra/, the same code `python -m infra` runs; values come from the project's configuration (pipeline.yaml /
PIPELINE_* environment, read by `config.settings.load_settings`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import dagster as dg

from config.settings import Settings, load_settings
from event_log.topic import topic_offsets

if TYPE_CHECKING:
    from event_log.topic import TopicOffsets
    from infra.services.flink_jobs import DeployResult, JobStatus


class KafkaResource(dg.ConfigurableResource):
    """The Kafka cluster and the events topic."""

    bootstrap_servers: str
    topic: str

    def offsets(self, groups: Sequence[str] = (), window_seconds: float = 60) -> TopicOffsets:
        """End offsets, the offsets the last `window_seconds` started at, and the groups' committed offsets."""

        return topic_offsets(_settings(), groups, window_seconds)


class FlinkResource(dg.ConfigurableResource):
    """The Flink cluster: its REST API, and the `flink` CLI of the Flink environment for submitting Python jobs
    (infra/services/flink_jobs.py); the same calls work against a remote cluster (flink.mode: remote)."""

    rest_url: str

    def deploy(self, job: str) -> DeployResult:
        from infra.services import flink_jobs

        return flink_jobs.deploy(_settings(), job)

    def recover(self, job: str) -> DeployResult:
        from infra.services import flink_jobs

        return flink_jobs.recover(_settings(), job)

    def busy(self, job: str) -> bool:
        from infra.services import flink_jobs

        return flink_jobs.busy(_settings(), job)

    def status(self, job: str) -> JobStatus:
        from infra.services import flink_jobs

        return flink_jobs.status(_settings(), job)

    def replay(self, job: str, start_ms: int, end_ms: int) -> str:
        from infra.services import flink_jobs

        return flink_jobs.replay(_settings(), job, start_ms, end_ms)

    def code_version(self, job: str) -> str:
        from infra.services import flink_jobs

        return flink_jobs.code_version(job)


class IcebergResource(dg.ConfigurableResource):
    """The Iceberg catalog `lake` (the catalog Flink writes through), and SQL over it (lakehouse/duckdb_views.py)."""

    catalog_name: str
    warehouse: str

    def table_stats(self, identifier: str) -> dict[str, Any]:
        from lakehouse import iceberg

        return iceberg.table_stats(iceberg.load(_settings()).load_table(identifier))

    def appended_rows(self, identifier: str, since: datetime) -> int:
        """Rows appended to the table by the commits since `since` (the snapshots' summaries: no data is read)."""
        from lakehouse import iceberg

        table = iceberg.load(_settings()).load_table(identifier)
        return iceberg.appended_rows(table, int(since.timestamp() * 1000))

    def late_events_by_window(self, since: datetime) -> dict[str, int]:
        """raw.late_events detected since `since`, per window_name (a scan of that table's recent files)."""
        from pyiceberg.expressions import parser

        from lakehouse import iceberg

        table = iceberg.load(_settings()).load_table("raw.late_events")
        return iceberg.count_by(table, "window_name", parser.parse(f"detected_at >= '{since.isoformat()}'"))

    def day_partitions(self, identifier: str, since: date | None = None) -> dict[str, dict[str, int]]:
        """Rows, files and last commit (ms) of each day partition of the table (from its manifests)."""
        from lakehouse import iceberg

        return iceberg.day_partition_stats(iceberg.load(_settings()).load_table(identifier), since)


class StackResource(dg.ConfigurableResource):
    """The stack's own processes, as the supervisor keeps them (infra/supervisor.py), and their health."""

    run_dir: str

    def report(self) -> dict[str, Any]:
        """What `make status --json` prints (infra/status.py)."""
        from infra import status

        return status.collect(_settings())

    def restarted_at(self, service: str) -> float | None:
        """When the supervisor last brought the service back after it ended on its own (seconds since the epoch)."""
        from infra import supervision

        restarted = supervision.read_state(_settings()).get("services", {}).get(service, {}).get("restarted_at")
        return float(restarted) if restarted else None

    def start_supervisor(self) -> int:
        """Start the supervisor if it is not running (it adopts what runs and restarts what ended); its PID."""
        from infra import supervision

        return supervision.ensure_supervisor(_settings())


def _settings() -> Settings:
    return load_settings()


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    return {
        "kafka": KafkaResource(bootstrap_servers=settings.kafka.servers, topic=settings.kafka.topic),
        "flink": FlinkResource(rest_url=settings.flink.url),
        "iceberg": IcebergResource(catalog_name=settings.iceberg.catalog_name, warehouse=settings.warehouse),
        "stack": StackResource(run_dir=str(settings.run_dir)),
    }
