"""The topic `http_events`: an external source asset (the interceptor writes it, nothing here materialises it),
observed by the freshness and lag sensor (sensors.py, every 5 minutes, without a run) and on demand from the UI:
end offsets, events/s over the last minute, and how far each Flink job's consumer group is behind."""

from typing import Any

import dagster as dg

from dagster_project.resources import KafkaResource
from event_log.topic import TopicOffsets
from flink_jobs import JOBS

HTTP_EVENTS_TOPIC = dg.AssetKey(["kafka", "http_events"])
RATE_WINDOW_SECONDS = 60


def consumer_group(job: str) -> str:
    """The Kafka consumer group of a Flink job (it commits its offsets there on each checkpoint)."""
    return JOBS[job].consumer_group


@dg.observable_source_asset(
    key=HTTP_EVENTS_TOPIC,
    group_name="ingest",
    description="Kafka topic http_events: one JSON event per API request, written by the interceptor.",
)
def http_events_topic(kafka: KafkaResource) -> dg.ObserveResult:
    offsets = kafka.offsets([consumer_group(job) for job in JOBS], window_seconds=RATE_WINDOW_SECONDS)
    return dg.ObserveResult(
        data_version=dg.DataVersion(str(sum(offsets.end.values()))), metadata=topic_metadata(kafka.topic, offsets)
    )


def topic_metadata(topic: str, offsets: TopicOffsets) -> dict[str, Any]:
    """An observation of the topic, from one look at its offsets (taken over the last RATE_WINDOW_SECONDS)."""
    lag = {job: offsets.lag(consumer_group(job)) for job in JOBS}
    return {
        "topic": topic,
        "partitions": dg.MetadataValue.int(len(offsets.end)),
        "end_offset_total": dg.MetadataValue.int(sum(offsets.end.values())),
        "events_per_second": dg.MetadataValue.float(round(offsets.events_since() / RATE_WINDOW_SECONDS, 2)),
        **{f"consumer_lag/{job}": dg.MetadataValue.int(-1 if n is None else n) for job, n in lag.items()},
    }
