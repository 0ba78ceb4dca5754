"""Sensors, each named after what it reacts to:

- `flink_jobs_on_failure` (every `dagster.health_interval_seconds`): records each job's state, last checkpoint
  and restarts as observations of its asset (when they change, at least every 5 minutes), and when a job that
  should run has no active run on the cluster (cancelled by hand, failed beyond Flink's own restarts) requests
  a run that materialises its asset: the deploy starts it from its latest checkpoint and counts a recovery.
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

from dagster_project import checks
from dagster_project.assets.flink import RECOVERY_TAG, job_key
from dagster_project.assets.iceberg import STREAMED, table_key
from dagster_project.assets.kafka import HTTP_EVENTS_TOPIC, RATE_WINDOW_SECONDS, consumer_group, topic_metadata
from dagster_project.resources import FlinkResource, IcebergResource, KafkaResource
from flink_jobs import JOBS
from infra import iceberg as iceberg_tables
from infra.config import Settings
from infra.process import ServiceError

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


def _job_metadata(status: dict[str, Any]) -> dict[str, Any]:
    checkpoint_at = status["last_checkpoint_at_ms"]
    return {
        "state": status["state"],
        "job_id": status["job_id"],
        "should_run": status["should_run"],
        "restarts": dg.MetadataValue.int(status["restarts"]),
        "recoveries": dg.MetadataValue.int(status["recoveries"]),
        "last_checkpoint_id": dg.MetadataValue.int(status["last_checkpoint_id"] or 0),
        "last_checkpoint_at": dg.MetadataValue.timestamp(checkpoint_at / 1000) if checkpoint_at else "none",
        "last_checkpoint_path": status["last_checkpoint_path"],
        "code_current": status["code_version_running"] == status["code_version_current"],
    }


def _recovery_in_flight(context: dg.SensorEvaluationContext, job: str) -> bool:
    runs = context.instance.get_runs(filters=dg.RunsFilter(tags={RECOVERY_TAG: job}, statuses=IN_FLIGHT), limit=1)
    return bool(runs)


def build_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    # the tables that are assets in this mode: the streamed ones, and in Lambda the batch layer's
    observed = [t.identifier for t in STREAMED]
    if settings.pipeline.mode == "lambda":
        observed += [t.identifier for t in iceberg_tables.BATCH_TABLES]

    @dg.sensor(
        name="flink_jobs_on_failure",
        minimum_interval_seconds=settings.dagster.health_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        target=dg.AssetSelection.assets(*(job_key(job) for job in JOBS)).without_checks(),
        description="Records the Flink jobs' state; brings back a job that should run from its latest checkpoint.",
    )
    def flink_jobs_on_failure(
        context: dg.SensorEvaluationContext, flink: FlinkResource
    ) -> dg.SensorResult | dg.SkipReason:
        cursor, now = _cursor(context), time.time()
        events: list[dg.AssetObservation] = []
        requests: list[dg.RunRequest] = []
        for job in JOBS:
            try:
                status = flink.status(job)
            except ServiceError as exc:
                return dg.SkipReason(f"the Flink cluster does not answer: {str(exc)[:300]}")
            seen = cursor.setdefault(job, {})
            # a deploy or stop under way (it holds the job's lock) is not a failure
            lost = status["should_run"] and status["state"] == "NOT_RUNNING" and not flink.busy(job)
            waited = now - seen.get("requested", 0) >= RETRY_RECOVERY_AFTER_SECONDS
            if lost and waited and not _recovery_in_flight(context, job):
                context.log.warning(f"{job} should run but has no active run (last {status['job_id']}): recovering")
                requests.append(dg.RunRequest(asset_selection=[job_key(job)], tags={RECOVERY_TAG: job}))
                seen["requested"] = now
            fingerprint = [status["state"], status["job_id"], status["restarts"], status["recoveries"]]
            if _due(seen, fingerprint, now):
                events.append(dg.AssetObservation(asset_key=job_key(job), metadata=_job_metadata(status)))
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

    return [flink_jobs_on_failure, streaming_on_staleness_or_lag]


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
