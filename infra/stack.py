"""The local stack: its services in start order, each behind one protocol (`infra/services/base.py`).

`up` starts them in this order, `down` stops them in the reverse one, `status` asks each how to check its
processes, and the supervisor keeps the processes they name alive. A component of the CLI
(`python -m infra up kafka catalog`) is a service's `component`.
"""

from __future__ import annotations

from config.settings import ConfigError, Settings
from infra.services.base import Probe, Service, Unit
from infra.services.dagster import Dagster
from infra.services.demo import DemoApp, Traffic
from infra.services.flink import Flink
from infra.services.jobs import FlinkJobs
from infra.services.kafka import Kafka
from infra.services.postgres import Catalog

SERVICES: tuple[Service, ...] = (Kafka(), Catalog(), Flink(), FlinkJobs(), Dagster(), DemoApp(), Traffic())
COMPONENTS = tuple(service.component for service in SERVICES)


def select(components: list[str]) -> list[Service]:
    """The services named (all when none is), in start order; an unknown name fails, naming the known ones."""
    unknown = sorted(set(components) - set(COMPONENTS))
    if unknown:
        raise ConfigError(f"unknown component(s) {', '.join(unknown)}; allowed: {', '.join(COMPONENTS)}")
    return [s for s in SERVICES if not components or s.component in components]


def units(settings: Settings) -> list[Unit]:
    """Every process the supervisor keeps here, in start order (embedded services only)."""
    return [unit for service in SERVICES for unit in service.units(settings)]


def probes(settings: Settings) -> list[Probe]:
    return [probe for service in SERVICES for probe in service.probes(settings)]
