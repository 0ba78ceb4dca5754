"""The topic `http_events` as an observed source asset (end offsets, events/s, each Flink job's consumer
lag), and `observe_sources_job`, which observes it from the UI."""

from typing import Any

import dagster as dg

from dagster_project.defs.keys import HTTP_EVENTS_TOPIC
from dagster_project.resources import KafkaResource, TopicOffsets
from flink_jobs import JOBS

RATE_WINDOW_SECONDS = 60
# the groups the Flink jobs read the topic with (each commits its offsets there on a checkpoint)
CONSUMER_GROUPS = {job: spec.consumer_group for job, spec in JOBS.items()}


def look_at_topic(kafka: KafkaResource) -> TopicOffsets:
    """One look at the topic: its offsets, those of the last RATE_WINDOW_SECONDS, the jobs' groups'."""
    return kafka.offsets(list(CONSUMER_GROUPS.values()), window_seconds=RATE_WINDOW_SECONDS)


def topic_metadata(topic: str, offsets: TopicOffsets) -> dict[str, Any]:
    """An observation of the topic, from one look at its offsets (`look_at_topic`)."""
    lag = {job: offsets.lag(group) for job, group in CONSUMER_GROUPS.items()}
    return {
        "topic": topic,
        "partitions": dg.MetadataValue.int(len(offsets.end)),
        "end_offset_total": dg.MetadataValue.int(sum(offsets.end.values())),
        "events_per_second": dg.MetadataValue.float(round(offsets.events_since() / RATE_WINDOW_SECONDS, 2)),
        **{f"consumer_lag/{job}": dg.MetadataValue.int(-1 if n is None else n) for job, n in lag.items()},
    }


@dg.observable_source_asset(
    key=HTTP_EVENTS_TOPIC,
    group_name="ingest",
    description="Kafka topic http_events: one JSON event per API request, written by the interceptor.",
)
def http_events_topic(kafka: KafkaResource) -> dg.ObserveResult:
    """The interceptor writes the topic; nothing here materialises it. The lake's sensor observes it every 5
    minutes without a run; this observes it on demand (`observe_sources_job`)."""
    offsets = look_at_topic(kafka)
    return dg.ObserveResult(
        data_version=dg.DataVersion(str(sum(offsets.end.values()))), metadata=topic_metadata(kafka.topic, offsets)
    )


# observing the topic now, from the UI (the lake's sensor observes it every 5 minutes without a run)
observe_sources_job = dg.define_asset_job("observe_sources_job", selection=dg.AssetSelection.assets(HTTP_EVENTS_TOPIC))
