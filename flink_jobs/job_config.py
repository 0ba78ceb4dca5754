"""The configuration a job receives: one JSON file written by the deployer from pipeline.yaml."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str
    topic: str
    group_id: str
    properties: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IcebergConfig:
    catalog_name: str
    catalog: str  # jdbc | rest
    uri: str
    warehouse: str
    properties: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamingConfig:
    """Event-time semantics: pipeline.yaml `streaming:`, whose defaults live in config/settings.py only."""

    out_of_orderness_seconds: int
    idle_timeout_seconds: int
    session_gap_minutes: int
    dedup_horizon_minutes: int
    replay_lookahead_minutes: int
    allowed_lateness_seconds: int
    funnel_routes: tuple[str, ...]
    funnel_timeout_minutes: int


SOURCES = ("kafka", "file", "iceberg")


@dataclass(frozen=True)
class SourceConfig:
    """Where the events come from: the topic (streaming), a file of messages (bounded, tests and demos), or
    raw.http_events for [replay_start_ms, replay_end_ms) (a Kappa replay, batch mode)."""

    kind: str = "kafka"
    path: str | None = None
    replay_start_ms: int | None = None
    replay_end_ms: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in SOURCES:
            raise ValueError(f"source.kind: {self.kind!r} is not one of {', '.join(SOURCES)}")
        if self.kind == "file" and not self.path:
            raise ValueError("source.path is required when source.kind is 'file'")
        if self.kind == "iceberg" and (self.replay_start_ms is None or self.replay_end_ms is None):
            raise ValueError("source.replay_start_ms and source.replay_end_ms are required for a replay")

    @property
    def bounded(self) -> bool:
        return self.kind != "kafka"


@dataclass(frozen=True)
class JobConfig:
    job_name: str
    iceberg: IcebergConfig
    streaming: StreamingConfig
    kafka: KafkaConfig | None = None
    source: SourceConfig = field(default_factory=SourceConfig)
    checkpoint_interval_seconds: int = 10
    parallelism: int = 1
    python_execution_mode: str = "process"  # of the job's Python functions: process | thread

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobConfig:
        return cls(
            job_name=data["job_name"],
            kafka=KafkaConfig(**data["kafka"]) if data.get("kafka") else None,
            iceberg=IcebergConfig(**data["iceberg"]),
            source=SourceConfig(**data.get("source", {})),
            streaming=StreamingConfig(
                **{**data["streaming"], "funnel_routes": tuple(data["streaming"]["funnel_routes"])}
            ),
            checkpoint_interval_seconds=int(data.get("checkpoint_interval_seconds", 10)),
            parallelism=int(data.get("parallelism", 1)),
            python_execution_mode=str(data.get("python_execution_mode", "process")),
        )

    def require_kafka(self) -> KafkaConfig:
        if self.kafka is None:
            raise ValueError(f"job {self.job_name}: reading Kafka needs the `kafka` section of the job configuration")
        return self.kafka


def from_args(argv: list[str] | None = None) -> JobConfig:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True, type=Path, help="job configuration JSON")
    args, _ = parser.parse_known_args(argv)
    return JobConfig.from_dict(json.loads(args.config.read_text()))
