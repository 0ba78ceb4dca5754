"""The topic every event goes through, read and written with confluent-kafka on any broker (the embedded one
`make up` starts, or an external cluster: `kafka.mode`, `kafka.bootstrap_servers`, `kafka.client`).

    from event_log.topic import client_config, topic_offsets
    offsets = topic_offsets(client_config(settings), settings.kafka.topic, groups=["flink-streaming"])
    offsets.lag("flink-streaming")
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from config.logs import get_logger
from config.settings import Settings

log = get_logger("event_log.topic")


class TopicError(RuntimeError):
    """The topic cannot be created or read as configured."""


def client_config(settings: Settings) -> dict[str, Any]:
    """librdkafka settings shared by every client of the platform (extra properties from kafka.client)."""
    return {"bootstrap.servers": settings.kafka.servers, **settings.kafka.client}


def ensure_topic(settings: Settings) -> None:
    k = settings.kafka
    admin = AdminClient(client_config(settings))
    existing = admin.list_topics(timeout=10).topics
    if k.topic in existing:
        return
    topic = NewTopic(
        k.topic,
        num_partitions=k.partitions,
        replication_factor=k.replication_factor,
        config={"retention.ms": str(k.retention_hours * 3600 * 1000)},
    )
    future = admin.create_topics([topic], operation_timeout=30)[k.topic]
    try:
        future.result()
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise TopicError(f"creating topic {k.topic} (kafka.topic) failed: {exc}") from exc
    log.info("topic_created", topic=k.topic, partitions=k.partitions)


def topic_end_offsets(settings: Settings) -> dict[int, int]:
    """High watermark per partition of the events topic."""
    return topic_offsets(client_config(settings), settings.kafka.topic).end


@dataclass(frozen=True)
class TopicOffsets:
    """Where the events topic stands: per partition its end (high watermark), the first offset written at or
    after `since_ms` (the end when nothing was), and the offsets consumer groups committed."""

    end: dict[int, int]
    since: dict[int, int]
    since_ms: int
    committed: dict[str, dict[int, int | None]]

    def events_since(self) -> int:
        return sum(self.end[p] - self.since[p] for p in self.end)

    def lag(self, group: str) -> int | None:
        """Events the group has not committed yet; None when it never committed (it has not consumed)."""
        offsets = self.committed.get(group, {})
        if not offsets or all(offset is None for offset in offsets.values()):
            return None
        return sum(self.end[p] - (offsets.get(p) or 0) for p in self.end)


def topic_offsets(
    client: Mapping[str, Any], topic: str, groups: Sequence[str] = (), window_seconds: float = 60
) -> TopicOffsets:
    """One look at `topic` through a client with the librdkafka settings `client` (`client_config`): end
    offsets, where the last `window_seconds` started (Kafka's time index: the record timestamps), and the
    committed offsets of `groups` (e.g. `flink-streaming`, committed on each checkpoint of the job)."""
    from confluent_kafka import Consumer, TopicPartition

    since_ms = int((time.time() - window_seconds) * 1000)
    config = {**client, "enable.auto.commit": False}
    consumer = Consumer({**config, "group.id": "infra-status"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        partitions = sorted(meta.partitions)
        end = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        found = consumer.offsets_for_times([TopicPartition(topic, p, since_ms) for p in partitions], timeout=10)
        # -1: no record at or after the time
        since = {tp.partition: (tp.offset if tp.offset >= 0 else end[tp.partition]) for tp in found}
    finally:
        consumer.close()
    committed: dict[str, dict[int, int | None]] = {}
    for group in groups:
        reader = Consumer({**config, "group.id": group})
        try:
            offsets = reader.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
            committed[group] = {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in offsets}
        finally:
            reader.close()
    return TopicOffsets(end=end, since=since, since_ms=since_ms, committed=committed)
