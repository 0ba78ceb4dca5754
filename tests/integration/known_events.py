"""Known events for the stack tests: made, sent to the topic, and what the per-minute window must hold of them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

from confluent_kafka import Producer

from bench.known_events import event as event
from config.settings import Settings
from event_log.topic import client_config
from lakehouse import iceberg


def produce(settings: Settings, events: Iterable[dict[str, object]]) -> None:
    producer = Producer({**client_config(settings), "enable.idempotence": True})
    for e in events:
        producer.produce(settings.kafka.topic, json.dumps(e).encode(), key=str(e["user_id"]))
    assert producer.flush(30) == 0


def minute_of(e: dict[str, object]) -> datetime:
    at = datetime.strptime(str(e["event_time"]), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return at.replace(second=0, microsecond=0)


def expected_per_minute(events: Iterable[dict[str, object]]) -> dict[tuple[datetime, int], list[int]]:
    """(minute, status) -> [requests, errors]: what speed.api_requests_per_minute must hold for the events."""
    expected: dict[tuple[datetime, int], list[int]] = {}
    for e in events:
        status = int(str(e["status_code"]))
        counts = expected.setdefault((minute_of(e), status), [0, 0])
        counts[0] += 1
        counts[1] += status >= 500
    return expected


def per_minute(settings: Settings, service: str) -> dict[tuple[datetime, int], list[int]]:
    """(minute, status) -> [requests, errors] of the service in speed.api_requests_per_minute."""
    table = iceberg.load(settings).load_table("speed.api_requests_per_minute")
    return {
        (r["window_start"], r["status_code"]): [r["request_count"], r["error_count"]]
        for r in table.scan(row_filter=f"service == '{service}'").to_arrow().to_pylist()
    }


def raw_count(settings: Settings, service: str) -> int:
    table = iceberg.load(settings).load_table("raw.http_events")
    return table.scan(row_filter=f"service == '{service}'", selected_fields=("event_id",)).count()
