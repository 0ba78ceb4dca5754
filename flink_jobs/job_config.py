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
class JobConfig:
    job_name: str
    kafka: KafkaConfig
    iceberg: IcebergConfig
    checkpoint_interval_seconds: int = 10
    parallelism: int = 1

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobConfig:
        return cls(
            job_name=data["job_name"],
            kafka=KafkaConfig(**data["kafka"]),
            iceberg=IcebergConfig(**data["iceberg"]),
            checkpoint_interval_seconds=int(data.get("checkpoint_interval_seconds", 10)),
            parallelism=int(data.get("parallelism", 1)),
        )


def from_args(argv: list[str] | None = None) -> JobConfig:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True, type=Path, help="job configuration JSON")
    args, _ = parser.parse_known_args(argv)
    return JobConfig.from_dict(json.loads(args.config.read_text()))
