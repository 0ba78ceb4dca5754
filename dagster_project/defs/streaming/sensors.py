"""`flink_jobs_on_failure`: the sensor that observes the Flink jobs, evaluates their `running` checks and
requests the recovery of a job that should run and has no active run."""

import json
import time
from typing import Any

import dagster as dg

from config.settings import Settings
from dagster_project.defs.keys import RECOVERY_TAG, job_key
from dagster_project.defs.observing import RETRY_RECOVERY_AFTER_SECONDS, due, read_cursor, recovery_in_flight
from dagster_project.defs.streaming.checks import job_running
from dagster_project.resources import FlinkResource, JobStatus, ServiceError, StackResource
from flink_jobs import JOBS

JOBMANAGER = "flink-jobmanager"  # the supervisor's name for the JobManager process


def job_metadata(status: JobStatus) -> dict[str, Any]:
    """An observation of a job."""
    checkpoint_at = status.last_checkpoint_at_ms
    recovery = status.last_recovery or {}
    return {
        "state": status.state,
        "job_id": status.job_id,
        "should_run": status.should_run,
        "restarts": dg.MetadataValue.int(status.restarts),
        "recoveries": dg.MetadataValue.int(status.recoveries),
        "last_checkpoint_id": dg.MetadataValue.int(status.last_checkpoint_id or 0),
        "last_checkpoint_at": dg.MetadataValue.timestamp(checkpoint_at / 1000) if checkpoint_at else "none",
        "last_checkpoint_path": status.last_checkpoint_path,
        "code_current": status.code_current,
        "last_recovery_by": recovery.get("by", "-"),
        "last_recovery_reason": recovery.get("reason", "-"),
        "last_recovery_at": dg.MetadataValue.timestamp(recovery["at"]) if recovery.get("at") else "none",
        "last_recovery_from": recovery.get("restored_from") or "-",
    }


def build_sensor(settings: Settings) -> dg.SensorDefinition:
    """Every `dagster.health_interval_seconds`: records each job's state, last checkpoint, restarts and last
    recovery (by whom, why, from where) as observations of its asset (when they change, at least every 5
    minutes); evaluates its `running` check (a job that should run and was restarting, waiting for a TaskManager
    or a slot, or gone for longer than `dagster.unhealthy_after_seconds` fails it); and when a job that should
    run has no active run on the cluster (cancelled by hand, failed beyond Flink's own restarts) requests a run
    that materialises its asset: the deploy starts it from its latest checkpoint and counts a recovery. In the
    first `dagster.unhealthy_after_seconds` after a JobManager restart it leaves that to the supervisor, which
    resubmits the jobs itself."""
    limit = settings.dagster.unhealthy_after_seconds

    @dg.sensor(
        name="flink_jobs_on_failure",
        minimum_interval_seconds=settings.dagster.health_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        target=dg.AssetSelection.assets(*(job_key(job) for job in JOBS)).without_checks(),
        description="Records the Flink jobs' state; a job not running for long fails its check; brings back a job "
        "that should run from its latest checkpoint when the supervisor has not.",
    )
    def flink_jobs_on_failure(
        context: dg.SensorEvaluationContext, flink: FlinkResource, stack: StackResource
    ) -> dg.SensorResult | dg.SkipReason:
        cursor, now = read_cursor(context), time.time()
        events: list[dg.AssetObservation | dg.AssetCheckEvaluation] = []
        requests: list[dg.RunRequest] = []
        # after a JobManager restart the supervisor resubmits the jobs itself
        jobmanager_restarted = stack.restarted_at(JOBMANAGER)
        supervisor_on_it = jobmanager_restarted is not None and now - jobmanager_restarted < limit
        for job in JOBS:
            try:
                status = flink.status(job)
            except ServiceError as exc:
                return dg.SkipReason(f"the Flink cluster does not answer: {str(exc)[:300]}")
            seen = cursor.setdefault(job, {})
            gone = status.should_run and status.state == "NOT_RUNNING"
            if not gone:
                seen.pop("gone_since", None)
            since = seen.setdefault("gone_since", now) if gone else (status.state_since_ms or 0) / 1000 or None
            verdict = job_running(job, status, since, now, limit)
            if due(seen.setdefault("check", {}), verdict.passed, now):
                events.append(verdict.evaluation())
            # a deploy or stop under way (it holds the job's lock) is not a failure; Dagster steps in when the
            # supervisor has not
            lost = gone and not flink.busy(job) and not supervisor_on_it
            waited = now - seen.get("requested", 0) >= RETRY_RECOVERY_AFTER_SECONDS
            if lost and waited and not recovery_in_flight(context, job):
                context.log.warning(f"{job} should run but has no active run (last {status.job_id}): recovering")
                requests.append(dg.RunRequest(asset_selection=[job_key(job)], tags={RECOVERY_TAG: job}))
                seen["requested"] = now
            fingerprint = [status.state, status.job_id, status.restarts, status.recoveries]
            if due(seen, fingerprint, now):
                events.append(dg.AssetObservation(asset_key=job_key(job), metadata=job_metadata(status)))
        return dg.SensorResult(run_requests=requests, asset_events=events, cursor=json.dumps(cursor))

    return flink_jobs_on_failure
