"""`KafkaResource`: the Kafka cluster and the events topic, read with the platform's own client code
(`event_log.topic`) through a client built from the resource's fields."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg
from pydantic import Field

from event_log import topic
from event_log.topic import TopicOffsets


class KafkaResource(dg.ConfigurableResource):
    """The Kafka cluster and the events topic (the `kafka` section of pipeline.yaml)."""

    bootstrap_servers: str = Field(description="The brokers, host:port[,host:port...] (kafka.bootstrap_servers).")
    topic: str = Field(description="The events topic (kafka.topic).")
    client: dict[str, str] = Field(
        default_factory=dict, description="Extra librdkafka properties, e.g. security.protocol (kafka.client)."
    )

    def client_config(self) -> dict[str, Any]:
        """The librdkafka settings of a client of this cluster."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.client}

    def offsets(self, groups: Sequence[str] = (), window_seconds: float = 60) -> TopicOffsets:
        """End offsets, the offsets the last `window_seconds` started at, and the groups' committed offsets."""
        return topic.topic_offsets(self.client_config(), self.topic, groups, window_seconds)
