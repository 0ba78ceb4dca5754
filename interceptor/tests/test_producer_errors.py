"""Producer error paths against an unreachable broker (short timeouts): nothing is lost silently."""

from __future__ import annotations

import time

from confluent_kafka import KafkaError

from interceptor.producer import EventProducer
from interceptor.spool import Spool


def _wait(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_with_a_spool_every_event_ends_on_disk(tmp_path, unreachable):
    producer = EventProducer(unreachable, spool_dir=tmp_path, replay_interval=0.2)
    try:
        for i in range(50):
            assert producer.send("http_events", f"event-{i}".encode(), key=b"k")
        assert _wait(lambda: producer.stats().get("spooled", 0) == 50), producer.stats()
        # once the broker is known to be down, new events go straight to disk
        assert producer.send("http_events", b"event-50")
        stats = producer.stats()
        assert stats["spooled"] == 51 and stats.get("dropped", 0) == 0 and stats["broker_down"] == 1
    finally:
        producer.close(timeout=1)
    values = sorted(v for seg in Spool(tmp_path, max_bytes=1 << 30).closed_segments() for _, _, v in Spool.read(seg))
    assert values == sorted(f"event-{i}".encode() for i in range(51))


def test_without_a_spool_failures_are_counted_and_logged(caplog, unreachable):
    producer = EventProducer(unreachable)
    try:
        producer.send("http_events", b"lost")
        assert _wait(lambda: producer.stats().get("dropped", 0) == 1), producer.stats()
    finally:
        producer.close(timeout=1)
    assert "event dropped" in caplog.text and "no spool configured" in caplog.text


def test_a_full_spool_drops_and_says_so(tmp_path, caplog, unreachable):
    producer = EventProducer(unreachable, spool_dir=tmp_path, spool_max_bytes=300)
    try:
        for i in range(20):
            producer.send("http_events", b"x" * 40 + str(i).encode())
        assert _wait(lambda: producer.stats().get("spooled", 0) + producer.stats().get("dropped", 0) == 20)
        stats = producer.stats()
        assert stats["dropped"] > 0 and stats["spooled"] > 0
    finally:
        producer.close(timeout=1)
    assert "spool full" in caplog.text


def test_a_fatal_error_gets_a_new_producer_and_loses_nothing(tmp_path, unreachable):
    """An idempotent producer's fatal error makes it useless: events go to the spool at once, what it still held
    is spooled, and a new producer takes over."""
    producer = EventProducer(unreachable, spool_dir=tmp_path, replay_interval=0.2)
    try:
        old = producer._producer
        assert producer.send("http_events", b"queued-before")
        producer._on_error(KafkaError(KafkaError._FATAL, "test: fatal", fatal=True))
        assert producer.send("http_events", b"sent-after")  # routed to the spool, not into the dead producer
        assert _wait(lambda: producer._producer is not old and not producer._renewing), producer.stats()
        assert _wait(lambda: producer.stats().get("spooled", 0) == 2), producer.stats()
    finally:
        producer.close(timeout=1)
    values = sorted(v for seg in Spool(tmp_path, max_bytes=1 << 30).closed_segments() for _, _, v in Spool.read(seg))
    assert values == [b"queued-before", b"sent-after"]
