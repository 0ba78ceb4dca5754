"""`StackResource`: the stack's own processes as the supervisor keeps them (`infra.supervision`) and their
health report (`infra.status`), for the stack whose state lives in the resource's `var_dir`."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from config.settings import Settings, load_settings
from infra import status, supervision
from infra.status import StackReport

SUPERVISOR = supervision.NAME  # the supervisor's name in the report


class StackResource(dg.ConfigurableResource):
    """The stack's processes and their supervisor (the `paths` section: where their pids, logs and state are)."""

    var_dir: str = Field(description="The stack's state: data, logs, pids and the supervisor's (paths.var_dir).")

    def pipeline_settings(self) -> Settings:
        """The pipeline's configuration for the stack under this `var_dir`."""
        return load_settings(paths={"var_dir": self.var_dir})

    def report(self) -> StackReport:
        """What `make status` shows: each service's state, restarts, last exit and health."""
        return status.collect(self.pipeline_settings())

    def restarted_at(self, service: str) -> float | None:
        """When the supervisor last brought the service back after it ended on its own (seconds since the epoch)."""
        services = supervision.read_state(self.pipeline_settings()).get("services", {})
        restarted = services.get(service, {}).get("restarted_at")
        return float(restarted) if restarted else None

    def start_supervisor(self) -> int:
        """Start the supervisor if it is not running (it adopts what runs and restarts what ended); its PID."""
        return supervision.ensure_supervisor(self.pipeline_settings())

    @staticmethod
    def exit_text(last: dict[str, Any] | None) -> str:
        """A process's last exit (a report's `last_exit`) in a few words."""
        return status.exit_text(last)
