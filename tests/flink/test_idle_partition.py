"""The streaming job on a local mini-cluster over a real topic (a broker started through `python -m infra up
kafka`): an idle partition does not hold the watermark back, and de-duplication remembers an event_id for
`streaming.dedup_horizon_minutes`.

An idle Kafka partition does not hold the watermark back (streaming.idle_timeout_seconds), over a two-partition
topic.

Partition 1 gets one event at 10:00:20 and then nothing; partition 0 keeps sending (its watermark 10:01:25).
Without idleness the job's watermark would stay at partition 1's 10:00:15 and the 10:00 minute would never
close; with it, partition 1 is skipped after the timeout, the 10:00 window fires with exactly its three events,
and an event for 10:00 that partition 1 sends afterwards is late: raw.late_events, not counted.

Partition 1's event must be read before partition 0 moves on: were its first fetch slower than the idle timeout
(a loaded machine), partition 1 would count as idle with its event still unread, and the event would rightly be
late. So partition 0 sends on only once the job has committed (on a checkpoint: the event has passed every
operator) an offset past partition 1's event."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import datetime

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from event_log.topic import client_config
from tests.flink.conftest import Lake, Sandbox, create_topic, start_job
from tests.flink.test_windows import at, event
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

IDLE_TIMEOUT_SECONDS = 2


def test_an_idle_partition_does_not_hold_the_watermark_back(broker: Sandbox, lake: Lake) -> None:
    settings = broker.settings
    created = create_topic(settings, "idle", partitions=2)
    topic = created.name

    def send(partition: int, message: str) -> None:
        created.send(message, partition)

    send(0, event("p0-1", "10:00:05", "/a", 200, "u1", 1))
    send(1, event("p1-1", "10:00:20", "/a", 200, "u2", 1))  # then partition 1 falls silent

    job, log = start_job(lake, topic, "idle", idle_timeout_seconds=IDLE_TIMEOUT_SECONDS)
    group = Consumer({**client_config(settings), "group.id": f"flink-{topic}", "enable.auto.commit": False})

    def both_read() -> bool:
        try:
            committed = group.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
        except KafkaException:  # the group's coordinator is still being chosen on a fresh broker
            return False
        return all(tp.offset >= 1 for tp in committed)

    stop = threading.Event()

    def keep_partition_0_busy() -> None:
        # partition 0 stays active at 10:01:30 (watermark 10:01:25): were it idle too, the whole source would
        # be idle and no watermark would move
        i = 0
        while not stop.is_set():
            send(0, event(f"p0-busy-{i}", "10:01:30", "/busy", 200, "u1", 1))
            i += 1
            time.sleep(0.5)

    busy = threading.Thread(target=keep_partition_0_busy, daemon=True)
    try:
        wait_for(both_read, 150, f"the job to read both partitions (job log: {lake.root / 'idle.log'})")
        send(0, event("p0-2", "10:00:40", "/a", 200, "u1", 1))
        busy.start()

        def minute_rows() -> list[tuple[datetime, str, int, int]]:
            rows = lake.rows("speed.api_requests_per_minute")
            return sorted((r["window_start"], r["route"], r["status_code"], r["request_count"]) for r in rows)

        def late_rows() -> list[tuple[str, datetime, str, str]]:
            rows = lake.rows("raw.late_events")
            return sorted((r["event_id"], r["window_start"], r["job_name"], r["window_name"]) for r in rows)

        assert wait_for(minute_rows, 150, f"the 10:00 window (job log: {lake.root / 'idle.log'})") == [
            (at("10:00:00"), "/a", 200, 3)
        ]
        # partition 1 speaks again, about a minute the watermark has passed: late, counted nowhere else; the
        # SQL windows and the DataStream minute window each say so (not a funnel route: the funnel has no opinion)
        send(1, event("p1-late", "10:00:50", "/a", 200, "u2", 1))
        late = [
            ("p1-late", at("10:00:00"), "idle", "requests_per_route_minute"),
            ("p1-late", at("10:00:00"), "idle", "sql_windows"),
        ]
        assert wait_for(lambda: late_rows() if len(late_rows()) >= 2 else None, 60, "the late event") == late
        time.sleep(3)  # a few more checkpoints: the window is not re-emitted, the late event not counted
        assert minute_rows() == [(at("10:00:00"), "/a", 200, 3)]
        assert job.poll() is None, (lake.root / "idle.log").read_text()[-3000:]
    finally:
        stop.set()
        if busy.is_alive():
            busy.join(5)
        group.close()
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
        log.close()
        created.delete()


def test_a_second_delivery_is_dropped_within_the_horizon_and_kept_after_it(broker: Sandbox, lake: Lake) -> None:
    """De-duplication remembers an event_id for streaming.dedup_horizon_minutes of processing time (the state's
    TTL, so the state is bounded by the rate times the horizon): a second delivery within it is dropped, one
    after it is written again (the Kappa replay and Lambda's batch layer count it once; dbt's `unique` test on
    stg_http_events reports it)."""
    settings = broker.settings
    created = create_topic(settings, "dedup")
    topic, send = created.name, created.send

    job, log = start_job(lake, topic, "dedup", dedup_horizon_minutes=1)
    try:

        def rows() -> list[str]:
            return sorted(r["event_id"] for r in lake.rows("raw.http_events", ("event_id",)))

        first = event("d1", "10:00:05", "/a", 200, "u1", 1)
        send(first)
        assert wait_for(rows, 150, f"the first delivery (job log: {lake.root / 'dedup.log'})") == ["d1"]
        remembered_at = time.monotonic()
        send(first)  # a replay of the spool right after: within the horizon
        send(event("d2", "10:00:06", "/a", 200, "u1", 1))
        assert wait_for(lambda: rows() if "d2" in rows() else None, 60, "the next event") == ["d1", "d2"]
        assert time.monotonic() - remembered_at < 60  # still within the horizon when it was judged
        time.sleep(max(0.0, remembered_at + 70 - time.monotonic()))  # past the horizon (one minute)
        send(first)
        assert wait_for(lambda: rows() if len(rows()) == 3 else None, 60, "the late second delivery") == [
            "d1",
            "d1",
            "d2",
        ]
        assert job.poll() is None, (lake.root / "dedup.log").read_text()[-3000:]
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
        log.close()
        created.delete()
