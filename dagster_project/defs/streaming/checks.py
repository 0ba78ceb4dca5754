"""`running` of every Flink job: a job that should run is RUNNING, or was not for at most
`dagster.unhealthy_after_seconds` (`streaming_checks` from the UI; the job sensor evaluates it without a run)."""

import time
from collections.abc import Iterator

import dagster as dg

from config.settings import Settings
from dagster_project.defs.keys import job_key
from dagster_project.defs.verdicts import Verdict, selected_results
from dagster_project.resources import FlinkResource, JobStatus
from flink_jobs import JOBS

JOB_RUNNING = "running"


def job_running(job: str, status: JobStatus, since: float | None, now: float, limit_s: int) -> Verdict:
    """A job that should run is RUNNING, or has not been anything else for longer than `limit_s` (restarting,
    waiting for a TaskManager or a free slot, gone from the cluster)."""
    state = str(status.state)
    if state == "RUNNING" or not status.should_run:
        return Verdict(job_key(job), JOB_RUNNING, True, f"{state.lower()} (should run: {status.should_run})")
    for_s = now - since if since is not None else 0.0
    passed = for_s <= limit_s
    cluster = status.cluster or {}
    slots = f"{cluster.get('taskmanagers', '?')} TaskManager(s), {cluster.get('slots-available', '?')} free slot(s)"
    return Verdict(
        job_key(job),
        JOB_RUNNING,
        passed,
        f"{state} for {for_s:.0f} s ({'within' if passed else 'beyond'} {limit_s} s); the cluster has {slots}",
        {"state": state, "for_seconds": dg.MetadataValue.float(round(for_s, 1))},
    )


CHECK_SPECS = [
    dg.AssetCheckSpec(JOB_RUNNING, asset=job_key(job), description="the job runs (not restarting for long)")
    for job in JOBS
]


def build_checks(settings: Settings) -> dg.AssetChecksDefinition:
    """From the UI, each job is judged by its state since Flink recorded it; the job sensor also remembers how
    long a job has been gone from the cluster."""
    limit = settings.dagster.unhealthy_after_seconds

    @dg.multi_asset_check(specs=CHECK_SPECS, name="streaming_checks", can_subset=True)
    def streaming_checks(context: dg.AssetCheckExecutionContext, flink: FlinkResource) -> Iterator[dg.AssetCheckResult]:
        now, verdicts = time.time(), []
        for job in JOBS:
            status = flink.status(job)
            since = status.state_since_ms / 1000 if status.state_since_ms else None
            verdicts.append(job_running(job, status, since, now, limit))
        yield from selected_results(context, verdicts)

    return streaming_checks
