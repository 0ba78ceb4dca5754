"""The Flink jobs as a part of the stack: `up` deploys each job of the registry (`flink_jobs.JOBS`), `down` stops
each with a savepoint. The deployer itself is `infra/flink_deploy/`, imported only when a job is deployed or
stopped (the supervisor, which holds this service too, never loads the catalog's client)."""

from __future__ import annotations

from config.settings import Settings
from flink_jobs import JOBS
from infra.services import flink
from infra.services.base import ServiceBase


class FlinkJobs(ServiceBase):
    component = "jobs"

    def start(self, settings: Settings) -> str | None:
        from infra import flink_deploy

        lines = []
        for job in JOBS:
            result = flink_deploy.deploy(settings, job)
            restored = f", restored from {result.restored_from}" if result.restored_from else ""
            lines.append(f"flink job {result.job}: {result.action} (job id {result.job_id or '-'}{restored})")
        return "\n".join(lines)

    def stop(self, settings: Settings) -> None:
        if settings.flink.mode == "embedded" and not any(p.is_running() for p in flink.processes(settings)):
            return  # no cluster, no job to stop (its last checkpoint is where it restarts)
        from infra import flink_deploy

        for job in JOBS:
            flink_deploy.stop(settings, job, savepoint=True)

    # no process of its own, no probe: `make status` reports each job on its own (infra/status.py)
