"""What a job is given: its code (the job's own files of `flink_jobs/`, zipped, and their code version) and its
configuration (one JSON file rendered from the pipeline's settings)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

from config.settings import Settings
from event_log.topic import client_config
from flink_jobs import JOBS, PACKAGE_DIR, JobSpec
from infra.flink_deploy.state import job_dir
from infra.process import ServiceError
from lakehouse import iceberg


def spec(name: str) -> JobSpec:
    try:
        return JOBS[name]
    except KeyError:
        raise ServiceError(f"unknown Flink job {name!r}; known jobs: {', '.join(sorted(JOBS))}") from None


def code_version(name: str) -> str:
    digest = hashlib.sha256()
    for path in spec(name).source_files():
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def job_config(settings: Settings, name: str) -> dict[str, Any]:
    kafka_props = {k: v for k, v in client_config(settings).items() if k != "bootstrap.servers"}
    return {
        "job_name": name,
        "kafka": {
            "bootstrap_servers": settings.kafka.servers,
            "topic": settings.kafka.topic,
            "group_id": spec(name).consumer_group,
            "properties": kafka_props,
        },
        "iceberg": {
            "catalog_name": settings.iceberg.catalog_name,
            "catalog": settings.iceberg.catalog,
            "uri": settings.catalog_jdbc_uri if settings.iceberg.catalog == "jdbc" else (settings.iceberg.uri or ""),
            "warehouse": settings.warehouse,
            "properties": {**settings.iceberg.properties, **iceberg.jdbc_credentials(settings)},
        },
        "source": {"kind": "kafka"},
        "streaming": settings.streaming.model_dump(),
        "checkpoint_interval_seconds": settings.flink.checkpoint_interval_seconds,
        "parallelism": settings.flink.parallelism,
        "python_execution_mode": settings.flink.python_execution_mode,
    }


def package_zip(settings: Settings, name: str) -> Path:
    """The flink_jobs package as a zip next to the job's configuration (files in a fixed order and time, so
    the same code gives the same bytes)."""
    path = job_dir(settings, name) / "flink_jobs.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in spec(name).source_files():
            info = zipfile.ZipInfo(f"flink_jobs/{file.relative_to(PACKAGE_DIR).as_posix()}", (1980, 1, 1, 0, 0, 0))
            archive.writestr(info, file.read_bytes(), zipfile.ZIP_DEFLATED)
    return path
