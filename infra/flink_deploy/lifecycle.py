"""Deploy, recover and stop a job. A deploy is idempotent: a job already running the current code is left alone;
a job running older code is stopped with a savepoint and started again from it; a job that is not running starts
from the newest savepoint or retained checkpoint it left behind, so `make down` / `make up` loses and repeats
nothing. Starting a job that should run but has ended (cancelled by hand, failed beyond Flink's own restarts) is a
recovery from its latest checkpoint, counted in its state; `recover` does only that."""

from __future__ import annotations

import time
from dataclasses import dataclass

from config.logs import get_logger
from config.settings import Settings
from infra.flink_deploy.cluster import find_job, halt, latest_restore_point, wait_running
from infra.flink_deploy.legacy import take_over_legacy_jobs
from infra.flink_deploy.package import code_version
from infra.flink_deploy.state import job_dir, job_lock, read_state, should_run, write_state
from infra.flink_deploy.submit import submit

log = get_logger("infra.flink_deploy")


@dataclass(frozen=True)
class DeployResult:
    job: str
    action: str  # "unchanged" | "started" | "upgraded" | "recovered" | "stopped" (recover: stopped on purpose)
    job_id: str
    restored_from: str | None = None


def start(settings: Settings, name: str, restore_from: str | None = None) -> str:
    job_id = submit(settings, name, restore_from)
    write_state(
        settings,
        name,
        job_id=job_id,
        code_version=code_version(name),
        deployed_at=time.time(),
        restored_from=restore_from,
        desired="running",
    )
    wait_running(settings, job_id)
    log.info("job_running", job=name, job_id=job_id)
    return job_id


def stop(settings: Settings, name: str, *, savepoint: bool = True, timeout: float = 120) -> str | None:
    """Stop the job on purpose (it is not recovered until deployed again); with `savepoint`, take one first and
    return its location."""
    with job_lock(settings, name):
        if job_dir(settings, name).joinpath("state.json").exists():
            write_state(settings, name, desired="stopped")
        return halt(settings, name, savepoint=savepoint, timeout=timeout)


def deploy(settings: Settings, name: str) -> DeployResult:
    with job_lock(settings, name):
        current = code_version(name)
        running = find_job(settings, name)
        if running is not None:
            state = read_state(settings, name)
            if state.get("job_id") == running["jid"] and state.get("code_version") == current:
                if state.get("desired") != "running":
                    write_state(settings, name, desired="running")
                return DeployResult(name, "unchanged", running["jid"])
            savepoint = halt(settings, name, savepoint=True)
            job_id = start(settings, name, restore_from=savepoint or latest_restore_point(settings, name))
            return DeployResult(name, "upgraded", job_id, savepoint)
        return start_from_latest(settings, name)


def recover(settings: Settings, name: str, *, by: str = "dagster", reason: str = "no active run") -> DeployResult:
    """Start the job from its latest checkpoint if it should run and has no active run on the cluster (cancelled
    by hand, failed beyond Flink's own restarts, a JobManager that was started again); judged under the job's
    lock, so a job stopped on purpose or deployed meanwhile is left as it is ("stopped" / "unchanged"). `by` and
    `reason` go into the job's state (`last_recovery`), which Dagster's sensor records."""
    with job_lock(settings, name):
        if not should_run(settings, name):
            return DeployResult(name, "stopped", "")
        running = find_job(settings, name)
        if running is not None:
            return DeployResult(name, "unchanged", running["jid"])
        return start_from_latest(settings, name, by=by, reason=reason)


def start_from_latest(
    settings: Settings, name: str, *, by: str = "deploy", reason: str = "it should run and had no active run"
) -> DeployResult:
    """Start the job from its newest savepoint or retained checkpoint. When it should have been running (nobody
    stopped it: cancelled by hand, failed for good, a cluster that went away) that is a recovery, counted."""
    lost = should_run(settings, name)
    recoveries = int(read_state(settings, name).get("recoveries", 0))
    restore = latest_restore_point(settings, name)
    if restore is None:
        take_over_legacy_jobs(settings, name)
    job_id = start(settings, name, restore_from=restore)
    if not lost:
        return DeployResult(name, "started", job_id, restore)
    recovery = {"by": by, "reason": reason, "at": time.time(), "job_id": job_id, "restored_from": restore}
    write_state(settings, name, recoveries=recoveries + 1, recovered_at=recovery["at"], last_recovery=recovery)
    log.warning("job_recovered", job=name, job_id=job_id, restored_from=restore or "none", by=by, reason=reason)
    return DeployResult(name, "recovered", job_id, restore)
