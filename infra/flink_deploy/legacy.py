"""Taking over from the Flink 2.0 line: a var/ of that line ran three jobs (raw_events, windows,
datastream_windows) where this line runs one, `streaming`. Their savepoints cannot be restored into it (other
operators), so its first start takes over where they stopped: legacy jobs still running are stopped with a
savepoint, the new job's consumer group starts after the last Kafka offset raw.http_events and
raw.dead_letter_events hold, or where the legacy raw_events committed its last checkpoint if further (nothing read
twice, nothing skipped), and their folders move to var/flink/jobs/legacy-2.0/. The windows open at that moment are
counted from there on only: docs/operations.md says to replay that day once it is over."""

from __future__ import annotations

import time
from typing import Any

from config.logs import get_logger
from config.settings import Settings
from event_log.topic import client_config
from infra.flink_deploy.cluster import find_job, halt
from infra.flink_deploy.package import spec
from infra.flink_deploy.state import job_dir, write_state
from lakehouse import contract

log = get_logger("infra.flink_deploy")

# the jobs of the Flink 2.0 line that `streaming` replaces
# the jobs of the Flink 2.0 line that `streaming` replaces
LEGACY_JOBS = ("raw_events", "windows", "datastream_windows")


LEGACY_DIR = "legacy-2.0"


def lake_positions(settings: Settings) -> dict[int, int]:
    """Per partition of the topic, the offset after the last message raw.http_events or raw.dead_letter_events
    holds: where a job that writes both (exactly once, with its offsets) left off."""
    from lakehouse import duckdb_views

    specs = [spec for spec in contract.TABLES if spec.identifier in ("raw.http_events", "raw.dead_letter_events")]
    with duckdb_views.connect(settings, specs) as con:
        rows = con.execute(
            "SELECT kafka_partition, max(kafka_offset) + 1 FROM ("
            " SELECT kafka_partition, kafka_offset FROM raw.http_events UNION ALL"
            " SELECT kafka_partition, kafka_offset FROM raw.dead_letter_events WHERE kafka_offset IS NOT NULL"
            ") GROUP BY 1"
        ).fetchall()
    return {int(partition): int(offset) for partition, offset in rows}


def take_over_legacy_jobs(settings: Settings, name: str) -> dict[str, Any] | None:
    """On the first start of `name` in a var/ of the Flink 2.0 line: stop its legacy jobs (savepoint), start its
    consumer group where raw.http_events ends, move their folders aside. None when there is nothing to take
    over (not the streaming job, a var/ without legacy jobs, or a group that already committed offsets)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    jobs_dir = job_dir(settings, name).parent
    legacy = [old for old in LEGACY_JOBS if (jobs_dir / old / "state.json").exists()]
    if name != "streaming" or not legacy:
        return None
    for old in legacy:
        if find_job(settings, old) is not None:
            halt(settings, old, savepoint=True)
    group, topic = spec(name).consumer_group, settings.kafka.topic
    admin = AdminClient(client_config(settings))
    listed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(30)
    if any(tp.offset >= 0 for tp in listed.topic_partitions or []):
        return None  # the group has its own position: it ran before
    # what raw.http_events and the dead letters hold, or past it where the legacy raw_events committed further
    # on its last checkpoint (a trailing duplicate it dropped is not in the tables)
    positions = lake_positions(settings)
    legacy_group = "flink-raw_events"
    committed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(legacy_group)])[legacy_group]
    for tp in committed.result(30).topic_partitions or []:
        if tp.topic == topic and tp.offset >= 0:
            positions[tp.partition] = max(positions.get(tp.partition, 0), tp.offset)
    if positions:
        partitions = [TopicPartition(topic, p, offset) for p, offset in sorted(positions.items())]
        admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, partitions)])[group].result(30)
    moved = jobs_dir / LEGACY_DIR
    moved.mkdir(parents=True, exist_ok=True)
    for old in legacy:
        (jobs_dir / old).rename(moved / old)
    taken = {"jobs": legacy, "positions": {str(p): o for p, o in sorted(positions.items())}, "at": time.time()}
    write_state(settings, name, taken_over=taken)
    log.warning("legacy_jobs_taken_over", job=name, legacy=",".join(legacy), positions=str(taken["positions"]))
    return taken
