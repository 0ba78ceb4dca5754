"""The topic `http_events`: an external source asset, observed for its end offsets."""

import dagster as dg

from dagster_project.resources import KafkaResource

HTTP_EVENTS_TOPIC = dg.AssetKey(["kafka", "http_events"])


@dg.observable_source_asset(
    key=HTTP_EVENTS_TOPIC,
    group_name="ingest",
    description="Kafka topic http_events: one JSON event per API request, written by the interceptor.",
)
def http_events_topic(kafka: KafkaResource) -> dg.ObserveResult:
    offsets = kafka.end_offsets()
    total = sum(offsets.values())
    return dg.ObserveResult(
        data_version=dg.DataVersion(str(total)),
        metadata={
            "topic": kafka.topic,
            "end_offset_total": dg.MetadataValue.int(total),
            "partitions": dg.MetadataValue.int(len(offsets)),
        },
    )
