"""A job's status as Dagster and `make status` see it: its state on the cluster, Flink's own restarts, the last
completed checkpoint, the code running vs the checkout's, and how often it was recovered."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from config.settings import Settings
from infra.flink_deploy.cluster import find_job
from infra.flink_deploy.package import code_version
from infra.flink_deploy.state import read_state, should_run
from infra.services import flink


@dataclass(frozen=True)
class JobStatus:
    """A job as the cluster and the deployer's state see it (what Dagster records and checks)."""

    job: str
    state: str  # Flink's job state, or NOT_RUNNING when the cluster has no active run of it
    job_id: str
    should_run: bool  # deployed and not stopped on purpose
    code_version_running: str
    code_version_current: str
    recoveries: int
    last_recovery: dict[str, Any]
    restarts: int = 0  # Flink's own restarts of the running job (its restart strategy)
    last_checkpoint_id: int | None = None
    last_checkpoint_at_ms: int | None = None
    last_checkpoint_path: str = ""
    state_since_ms: int | None = None
    cluster: dict[str, Any] = field(default_factory=dict)  # taskmanagers, slots-total, slots-available

    @property
    def code_current(self) -> bool:
        return self.code_version_running == self.code_version_current


def status(settings: Settings, name: str) -> JobStatus:
    """What Dagster records of a job: its state on the cluster, Flink's own restarts, the last completed
    checkpoint, the code running vs the checkout's, and how often it was recovered."""
    state = read_state(settings, name)
    found = find_job(settings, name)
    job_id = found["jid"] if found else state.get("job_id")
    overview = flink.overview(settings)
    detail = JobStatus(
        job=name,
        state=found["state"] if found else "NOT_RUNNING",
        job_id=job_id or "",
        should_run=should_run(settings, name),
        code_version_running=state.get("code_version", "") if found else "",
        code_version_current=code_version(name),
        recoveries=int(state.get("recoveries", 0)),
        last_recovery=state.get("last_recovery") or {},
        cluster={k: overview.get(k) for k in ("taskmanagers", "slots-total", "slots-available")},
    )
    if not found:
        return detail
    timestamps = flink.rest(settings, "GET", f"/jobs/{job_id}").get("timestamps", {})
    metrics = flink.rest(settings, "GET", f"/jobs/{job_id}/metrics?get=numRestarts")
    latest = (flink.rest(settings, "GET", f"/jobs/{job_id}/checkpoints").get("latest") or {}).get("completed") or {}
    return replace(
        detail,
        state_since_ms=timestamps.get(found["state"]),
        restarts=int(next((float(m["value"]) for m in metrics if m["id"] == "numRestarts"), 0)),
        last_checkpoint_id=latest.get("id"),
        last_checkpoint_at_ms=latest.get("latest_ack_timestamp"),
        last_checkpoint_path=latest.get("external_path", ""),
    )
