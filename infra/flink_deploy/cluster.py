"""The cluster's side of a job, through Flink's REST API: its active run, waiting for it to run, stopping it with a
savepoint (or cancelling it), and the newest savepoint or retained checkpoint to restore from."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from config.logs import get_logger
from config.settings import Settings
from infra.flink_deploy.state import read_state, write_state
from infra.process import ServiceError, wait_until
from infra.services import flink

log = get_logger("infra.flink_deploy")

ACTIVE_STATES = {"CREATED", "INITIALIZING", "RUNNING", "RESTARTING", "RECONCILING", "FAILING", "CANCELLING"}


def list_jobs(settings: Settings) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = flink.rest(settings, "GET", "/jobs/overview")["jobs"]
    return jobs


def find_job(settings: Settings, name: str) -> dict[str, Any] | None:
    """The active job of that name, if any (the newest when several exist)."""
    active = [j for j in list_jobs(settings) if j["name"] == name and j["state"] in ACTIVE_STATES]
    return max(active, key=lambda j: j["start-time"]) if active else None


def wait_running(settings: Settings, job_id: str, timeout: float = 120) -> None:
    """Until every task runs: a job is RUNNING while its tasks still restore their state (INITIALIZING), and
    a savepoint cannot be taken before they are done."""

    def running() -> bool:
        detail = flink.rest(settings, "GET", f"/jobs/{job_id}")
        if detail["state"] in {"FAILED", "CANCELED", "FINISHED"}:
            raise ServiceError(f"Flink job {job_id} ended as {detail['state']} right after submission")
        tasks = {vertex["status"] for vertex in detail.get("vertices", [])}
        return bool(detail["state"] == "RUNNING" and tasks <= {"RUNNING", "FINISHED"})

    wait_until(running, timeout=timeout, what=f"Flink job {job_id} to run")


def latest_restore_point(settings: Settings, name: str) -> str | None:
    """The newest of the job's last savepoint and the retained checkpoints of its last run."""
    state = read_state(settings, name)
    candidates: list[tuple[float, str]] = []
    savepoint = state.get("savepoint")
    if savepoint and (Path(savepoint.removeprefix("file:")) / "_metadata").exists():
        candidates.append((float(state.get("savepoint_at", 0)), savepoint))
    job_id = state.get("job_id")
    if job_id:
        for chk in (flink.checkpoint_dir(settings) / job_id).glob("chk-*"):
            metadata = chk / "_metadata"
            if metadata.exists():
                candidates.append((metadata.stat().st_mtime, str(chk)))
    return max(candidates)[1] if candidates else None


def halt(settings: Settings, name: str, *, savepoint: bool, timeout: float = 120) -> str | None:
    job = find_job(settings, name)
    if job is None:
        return None
    job_id = job["jid"]
    location = None
    if savepoint and job["state"] == "RUNNING":
        target = (flink.savepoint_dir(settings) / name).as_uri()
        trigger = flink.rest(
            settings, "POST", f"/jobs/{job_id}/stop", json={"drain": False, "targetDirectory": target}
        )["request-id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = flink.rest(settings, "GET", f"/jobs/{job_id}/savepoints/{trigger}")
            if status["status"]["id"] == "COMPLETED":
                location = savepoint_location(name, status.get("operation", {}))
                break
            time.sleep(0.5)
    if location is not None:
        write_state(settings, name, savepoint=location, savepoint_at=time.time())
    # a completed stop-with-savepoint ends the job by itself; without one (none asked, or it failed) cancel it
    if location is None and flink.rest(settings, "GET", f"/jobs/{job_id}")["state"] in ACTIVE_STATES:
        try:
            flink.rest(settings, "PATCH", f"/jobs/{job_id}?mode=cancel")
        except ServiceError:
            if flink.rest(settings, "GET", f"/jobs/{job_id}")["state"] in ACTIVE_STATES:
                raise  # not a job that ended meanwhile

    def gone() -> bool:
        return bool(flink.rest(settings, "GET", f"/jobs/{job_id}")["state"] not in ACTIVE_STATES)

    wait_until(gone, timeout=60, what=f"Flink job {name} to stop")
    log.info("job_stopped", job=name, job_id=job_id, savepoint=location or "none")
    return location


def savepoint_location(name: str, operation: dict[str, Any]) -> str | None:
    """Where the stop's savepoint is. When the job failed while stopping *after* the savepoint was written,
    Flink reports a failure whose message names the savepoint: it is consistent, and restarting from it
    commits what it holds (Iceberg's committer keeps uncommitted files in its state)."""
    if "failure-cause" not in operation:
        return str(operation["location"])
    cause = json.dumps(operation["failure-cause"])
    found = re.search(r"A savepoint has been created at: (\S+?), but", cause)
    if found:
        log.warning("job_failed_while_stopping", job=name, savepoint=found.group(1))
        return found.group(1)
    log.warning("savepoint_failed", job=name, cause=cause[:300])
    return None
