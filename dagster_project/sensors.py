"""Sensors, each named after what it reacts to:

- `flink_jobs_on_failure` (every `dagster.health_interval_seconds`): records each job's state, last checkpoint,
  restarts and last recovery (by whom, why, from where) as observations of its asset (when they change, at least
  every 5 minutes); evaluates its `running` check (a job that should run and was restarting, waiting for a
  TaskManager or a slot, or gone for longer than `dagster.unhealthy_after_seconds` fails it); and when a job
  that should run has no active run on the cluster (cancelled by hand, failed beyond Flink's own restarts)
  requests a run that materialises its asset: the deploy starts it from its latest checkpoint and counts a
  recovery. In the first `dagster.unhealthy_after_seconds` after a JobManager restart it leaves that to the
  supervisor, which resubmits the jobs itself.
- `services_on_failure` (every `dagster.health_interval_seconds`): observes the stack's processes
  (`platform/services`: state, restarts, last exit, uptime) when they change, at least every 5 minutes;
  evaluates `services_running`; and when the supervisor is gone while services should run, requests a run of
  `recover_services_job`, which starts it again (it adopts the running services and brings back what ended).
  The supervisor keeps the Dagster daemon alive, and the daemon runs this sensor: each brings the other back.
- `streaming_on_staleness_or_lag` (every `dagster.checks_interval_seconds`): evaluates the streaming checks
  (checks.py: freshness, consumer lag, dead-letter and late rates) without a run (a check's result is
  recorded when it changes, at least every 5 minutes), records the topic's offsets, events/s and consumer lag
  as an observation every 5 minutes, and the Iceberg tables' snapshots, rows, files and last commit as
  observations when they changed (at most every 5 minutes), with rows and files of each complete day partition
  of the last week that changed. A run would start a process loading the whole code location (~450 MiB for
  ~20 s); an observation from the sensor costs nothing but the look itself.
"""

import json
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from config.settings import Settings
from dagster_project import checks
from dagster_project.assets.flink import RECOVERY_TAG, job_key
from dagster_project.assets.iceberg import STREAMED, table_key
from dagster_project.assets.kafka import HTTP_EVENTS_TOPIC, RATE_WINDOW_SECONDS, consumer_group, topic_metadata
from dagster_project.assets.platform import SERVICES, services_fingerprint, services_metadata
from dagster_project.jobs import recover_services_job
from dagster_project.resources import FlinkResource, IcebergResource, KafkaResource, StackResource
from flink_jobs import JOBS
from infra import supervision
from infra.process import ServiceError
from infra.services.flink_jobs import JobStatus
from lakehouse import contract

OBSERVE_AT_LEAST_EVERY_SECONDS = 300
RETRY_RECOVERY_AFTER_SECONDS = 120
PARTITION_DAYS_OBSERVED = 7  # the complete days late events may still reach (today is no partition yet)
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _cursor(context: dg.SensorEvaluationContext) -> dict[str, Any]:
    return dict(json.loads(context.cursor)) if context.cursor else {}


def _due(
    seen: dict[str, Any],
    fingerprint: Any,
    now: float,
    min_gap: float = 0,
    max_gap: float = OBSERVE_AT_LEAST_EVERY_SECONDS,
) -> bool:
    """Whether to record an event again (and then remember it in `seen`): what it reports changed and the last
    one is at least `min_gap` seconds old, or the last one is `max_gap` old."""
    elapsed = now - seen.get("at", 0)
    if (seen.get("fingerprint") != fingerprint and elapsed >= min_gap) or elapsed >= max_gap:
        seen.update(fingerprint=fingerprint, at=now)
        return True
    return False


def _job_metadata(status: JobStatus) -> dict[str, Any]:
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


def _recovery_in_flight(context: dg.SensorEvaluationContext, job: str) -> bool:
    runs = context.instance.get_runs(filters=dg.RunsFilter(tags={RECOVERY_TAG: job}, statuses=IN_FLIGHT), limit=1)
    return bool(runs)


def build_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    # the tables that are assets in this mode: the streamed ones, and in Lambda the batch layer's
    observed = [t.identifier for t in STREAMED]
    if settings.pipeline.mode == "lambda":
        observed += [t.identifier for t in contract.BATCH_TABLES]

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
        cursor, now = _cursor(context), time.time()
        limit = settings.dagster.unhealthy_after_seconds
        events: list[dg.AssetObservation | dg.AssetCheckEvaluation] = []
        requests: list[dg.RunRequest] = []
        # after a JobManager restart the supervisor resubmits the jobs itself (infra/supervisor.py)
        jobmanager_restarted = stack.restarted_at("flink-jobmanager")
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
            verdict = checks.job_running(job, status, since, now, limit)
            if _due(seen.setdefault("check", {}), verdict.passed, now):
                events.append(verdict.evaluation())
            # a deploy or stop under way (it holds the job's lock) is not a failure; Dagster steps in when the
            # supervisor has not
            lost = gone and not flink.busy(job) and not supervisor_on_it
            waited = now - seen.get("requested", 0) >= RETRY_RECOVERY_AFTER_SECONDS
            if lost and waited and not _recovery_in_flight(context, job):
                context.log.warning(f"{job} should run but has no active run (last {status.job_id}): recovering")
                requests.append(dg.RunRequest(asset_selection=[job_key(job)], tags={RECOVERY_TAG: job}))
                seen["requested"] = now
            fingerprint = [status.state, status.job_id, status.restarts, status.recoveries]
            if _due(seen, fingerprint, now):
                events.append(dg.AssetObservation(asset_key=job_key(job), metadata=_job_metadata(status)))
        return dg.SensorResult(run_requests=requests, asset_events=events, cursor=json.dumps(cursor))

    @dg.sensor(
        name="services_on_failure",
        minimum_interval_seconds=settings.dagster.health_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        jobs=[recover_services_job],
        description="Records the stack's processes (state, restarts, last exit, uptime); fails `services_running` "
        "while something that should run does not; starts the supervisor again when it is gone.",
    )
    def services_on_failure(context: dg.SensorEvaluationContext, stack: StackResource) -> dg.SensorResult:
        cursor, now = _cursor(context), time.time()
        report = stack.report()
        events: list[dg.AssetObservation | dg.AssetCheckEvaluation] = []
        requests: list[dg.RunRequest] = []
        verdict = checks.services_running(report)
        if not verdict.passed:
            context.log.warning(verdict.description)
        if _due(cursor.setdefault("check", {}), [verdict.passed, verdict.description], now, min_gap=0):
            events.append(verdict.evaluation())
        if _due(cursor.setdefault("observed", {}), services_fingerprint(report), now):
            events.append(dg.AssetObservation(asset_key=SERVICES, metadata=services_metadata(report)))
        supervisor = next(s for s in report["services"] if s["name"] == supervision.NAME)
        waited = now - cursor.get("requested", 0) >= RETRY_RECOVERY_AFTER_SECONDS
        if not supervisor["healthy"] and waited and not _recovery_in_flight(context, supervision.NAME):
            context.log.warning("the supervisor is gone while services should run: starting it again")
            requests.append(dg.RunRequest(job_name=recover_services_job.name, tags={RECOVERY_TAG: supervision.NAME}))
            cursor["requested"] = now
        return dg.SensorResult(run_requests=requests, asset_events=events, cursor=json.dumps(cursor))

    @dg.sensor(
        name="streaming_on_staleness_or_lag",
        minimum_interval_seconds=settings.dagster.checks_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Evaluates freshness, consumer lag, dead-letter and late rates; observes the Iceberg tables.",
    )
    def streaming_on_staleness_or_lag(
        context: dg.SensorEvaluationContext, kafka: KafkaResource, iceberg: IcebergResource
    ) -> dg.SensorResult | dg.SkipReason:
        cursor, now = _cursor(context), datetime.now(UTC)
        try:
            stats = {identifier: iceberg.table_stats(identifier) for identifier in observed}
            offsets = kafka.offsets([consumer_group(job) for job in JOBS], window_seconds=RATE_WINDOW_SECONDS)
            verdicts = checks.evaluate(kafka, iceberg, stats, now, offsets)
        except Exception as exc:  # a service that does not answer: nothing to judge this time
            return dg.SkipReason(f"could not evaluate the checks: {type(exc).__name__}: {str(exc)[:300]}")
        failed = [f"{v.asset_key.to_user_string()}:{v.check_name}" for v in verdicts if not v.passed]
        if failed:
            context.log.warning(f"checks failing: {', '.join(failed)}")
        # a check's result when it changes, at least every 5 minutes
        checked = cursor.setdefault("checks", {})
        events: list[dg.AssetObservation | dg.AssetCheckEvaluation] = [
            v.evaluation()
            for v in verdicts
            if _due(checked.setdefault(f"{v.asset_key.to_user_string()}:{v.check_name}", {}), v.passed, now.timestamp())
        ]
        # the topic's observation every 5 minutes
        topic_seen = cursor.setdefault(HTTP_EVENTS_TOPIC.to_user_string(), {})
        if _due(topic_seen, None, now.timestamp()):
            events.append(
                dg.AssetObservation(asset_key=HTTP_EVENTS_TOPIC, metadata=topic_metadata(kafka.topic, offsets))
            )
        # a table's observation when it changed, at most every 5 minutes (a streamed table changes all the time)
        today = now.date()
        since = today - timedelta(days=PARTITION_DAYS_OBSERVED)
        for identifier, table in stats.items():
            seen = cursor.setdefault(identifier, {})
            if table["snapshot_id"] is None or not _due(
                seen, table["snapshot_id"], now.timestamp(), min_gap=OBSERVE_AT_LEAST_EVERY_SECONDS, max_gap=math.inf
            ):
                continue
            events.append(dg.AssetObservation(asset_key=table_key(identifier), metadata=_table_metadata(table)))
            days_seen, days = seen.get("days", {}), {}
            for day, part in iceberg.day_partitions(identifier, since).items():
                if day >= today.isoformat():
                    continue
                days[day] = [part["rows"], part["files"]]
                if days_seen.get(day) != days[day]:
                    metadata = {
                        "rows": dg.MetadataValue.int(part["rows"]),
                        "data_files": dg.MetadataValue.int(part["files"]),
                    }
                    events.append(
                        dg.AssetObservation(asset_key=table_key(identifier), partition=day, metadata=metadata)
                    )
            seen["days"] = days
        return dg.SensorResult(asset_events=events, cursor=json.dumps(cursor))

    return [flink_jobs_on_failure, services_on_failure, streaming_on_staleness_or_lag]


def _table_metadata(table: dict[str, Any]) -> dict[str, Any]:
    return {
        "snapshot_id": str(table["snapshot_id"]),
        "rows": dg.MetadataValue.int(table["rows"]),
        "data_files": dg.MetadataValue.int(table["files"]),
        "snapshots": dg.MetadataValue.int(table["snapshots"]),
        "last_commit_at": dg.MetadataValue.timestamp(table["committed_at_ms"] / 1000),
        # what Dagster's own freshness views read
        "dagster/last_updated_timestamp": dg.MetadataValue.timestamp(table["committed_at_ms"] / 1000),
    }
