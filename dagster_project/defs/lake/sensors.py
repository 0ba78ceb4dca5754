"""`streaming_on_staleness_or_lag`: the sensor that evaluates the stream's checks (the lake's, and ingest's
consumer lag) and observes the topic and the Iceberg tables, all without a run."""

import json
import math
from datetime import UTC, datetime, timedelta

import dagster as dg

from config.settings import Settings
from dagster_project.defs.ingest.assets import look_at_topic, topic_metadata
from dagster_project.defs.ingest.checks import lag_verdicts
from dagster_project.defs.keys import HTTP_EVENTS_TOPIC, table_key
from dagster_project.defs.lake.assets import observed_tables, partition_metadata, stats_metadata
from dagster_project.defs.lake.checks import lake_verdicts
from dagster_project.defs.observing import OBSERVE_AT_LEAST_EVERY_SECONDS, due, read_cursor
from dagster_project.resources import IcebergResource, KafkaResource, ThresholdsResource

PARTITION_DAYS_OBSERVED = 7  # the complete days late events may still reach (today is no partition yet)


def build_sensor(settings: Settings) -> dg.SensorDefinition:
    """Every `dagster.checks_interval_seconds`: evaluates the checks (a check's result is recorded when it
    changes, at least every 5 minutes), records the topic's offsets, events/s and consumer lag as an
    observation every 5 minutes, and the Iceberg tables' snapshots, rows, files and last commit as observations
    when they changed (at most every 5 minutes), with rows and files of each complete day partition of the last
    week that changed. A run would start a process loading the whole code location (~450 MiB for ~20 s); an
    observation from the sensor costs nothing but the look itself."""
    observed = [table.identifier for table in observed_tables(settings)]

    @dg.sensor(
        name="streaming_on_staleness_or_lag",
        minimum_interval_seconds=settings.dagster.checks_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Evaluates freshness, consumer lag, dead-letter and late rates; observes the Iceberg tables.",
    )
    def streaming_on_staleness_or_lag(
        context: dg.SensorEvaluationContext,
        kafka: KafkaResource,
        iceberg: IcebergResource,
        thresholds: ThresholdsResource,
    ) -> dg.SensorResult | dg.SkipReason:
        cursor, now = read_cursor(context), datetime.now(UTC)
        try:
            limits = thresholds.limits()
            stats = {identifier: iceberg.table_stats(identifier) for identifier in observed}
            offsets = look_at_topic(kafka)
            verdicts = lake_verdicts(iceberg, limits, now, stats) + lag_verdicts(offsets, limits)
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
            if due(checked.setdefault(f"{v.asset_key.to_user_string()}:{v.check_name}", {}), v.passed, now.timestamp())
        ]
        # the topic's observation every 5 minutes
        topic_seen = cursor.setdefault(HTTP_EVENTS_TOPIC.to_user_string(), {})
        if due(topic_seen, None, now.timestamp()):
            events.append(
                dg.AssetObservation(asset_key=HTTP_EVENTS_TOPIC, metadata=topic_metadata(kafka.topic, offsets))
            )
        # a table's observation when it changed, at most every 5 minutes (a streamed table changes all the time)
        today = now.date()
        since = today - timedelta(days=PARTITION_DAYS_OBSERVED)
        for identifier, table in stats.items():
            seen = cursor.setdefault(identifier, {})
            if table.snapshot_id is None or not due(
                seen, table.snapshot_id, now.timestamp(), min_gap=OBSERVE_AT_LEAST_EVERY_SECONDS, max_gap=math.inf
            ):
                continue
            events.append(dg.AssetObservation(asset_key=table_key(identifier), metadata=stats_metadata(table)))
            days_seen, days = seen.get("days", {}), {}
            for day, part in iceberg.day_partitions(identifier, since).items():
                if day >= today.isoformat():
                    continue
                days[day] = [part.rows, part.files]
                if days_seen.get(day) != days[day]:
                    events.append(
                        dg.AssetObservation(
                            asset_key=table_key(identifier), partition=day, metadata=partition_metadata(part)
                        )
                    )
            seen["days"] = days
        return dg.SensorResult(asset_events=events, cursor=json.dumps(cursor))

    return streaming_on_staleness_or_lag
