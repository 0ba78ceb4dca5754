"""The stack's processes as one observed source asset, `platform/services`, with what `make status` shows of
each: state, restarts, last exit and uptime."""

from typing import Any

import dagster as dg

from dagster_project.defs.keys import SERVICES
from dagster_project.resources import StackReport, StackResource


@dg.observable_source_asset(
    key=SERVICES,
    group_name="platform",
    description="The stack's processes (Kafka, PostgreSQL, Flink, Dagster, the demo): state, restarts, last exit.",
)
def services(stack: StackResource) -> dg.ObserveResult:
    """The supervisor keeps the processes; nothing here materialises them. `services_on_failure` observes them
    when something changed and at least every 5 minutes; this observes them on demand from the UI."""
    return dg.ObserveResult(metadata=services_metadata(stack.report()))


def services_metadata(report: StackReport) -> dict[str, Any]:
    """One observation of the services, from one report (`StackResource.report`)."""
    metadata: dict[str, Any] = {"healthy": dg.MetadataValue.bool(report.healthy)}
    for service in report.services:
        if service.kind != "process":
            continue
        name, uptime = service.name, service.uptime_seconds
        metadata[f"{name}/state"] = service.state
        metadata[f"{name}/restarts"] = dg.MetadataValue.int(service.restarts or 0)
        metadata[f"{name}/last_exit"] = StackResource.exit_text(service.last_exit)
        metadata[f"{name}/uptime_seconds"] = dg.MetadataValue.float(float(uptime)) if uptime is not None else "-"
    return metadata


def services_fingerprint(report: StackReport) -> list[Any]:
    """What makes an observation worth recording again: a state, a restart or an exit changed."""
    return [
        [s.name, s.state, s.restarts, (s.last_exit or {}).get("at")] for s in report.services if s.kind == "process"
    ]
