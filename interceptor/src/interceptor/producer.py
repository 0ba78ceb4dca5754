"""`send_message_to_kafka(topic, message)`: one process-wide confluent-kafka producer that never blocks the
request path and, with a spool directory, loses no event while Kafka is away.

- Idempotent (acks=all), compressed, batched (linger); `produce()` only appends to librdkafka's local queue.
- Delivery reports come for failures only (`delivery.report.only.error`): a Python callback per delivered
  message would cost the request path's core as much as the rest of the interceptor together. One background
  thread serves them (`poll`); `flush` with a timeout runs once at shutdown. Delivered = produced - failed -
  still queued (exact once the queue is drained).
- With `spool_dir`, every message that cannot go to Kafka goes to a durable on-disk spool: when the local
  queue is full, when delivery fails, and for as long as the broker is down (new messages then go straight
  to disk, so a crash loses none of them). While the spool holds anything, new messages are appended behind
  it, and a replayer thread sends its segments oldest first once the broker answers again: order is kept.
- A replayed segment is removed only when all of its records were delivered, so a crash during a replay can
  send a record twice; the pipeline counts each `event_id` once.
- The spool's size is bounded; a message that does not fit is dropped, counted and logged.

Counters (`stats()`): produced, delivered, failed, spooled, replayed, dropped, queue_full, queued.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

try:  # orjson (a dependency of the platform) encodes an event in a tenth of the standard library's time
    from orjson import dumps as _orjson_dumps

    def encode_json(message: dict[str, Any]) -> bytes:
        return _orjson_dumps(message)

except ImportError:  # pragma: no cover - the interceptor copied into an app without orjson

    def encode_json(message: dict[str, Any]) -> bytes:
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


from interceptor.spool import Spool

log = logging.getLogger("interceptor.producer")

DEFAULT_CONFIG: dict[str, Any] = {
    "bootstrap.servers": "127.0.0.1:9092",
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 20,
    "batch.num.messages": 10000,
    # a burst beyond this goes to the spool (never blocks the caller): ~100-200 MB of events at most
    "queue.buffering.max.messages": 500000,
    "queue.buffering.max.kbytes": 262144,
    "delivery.report.only.error": True,
    # a message that cannot be delivered within this time is handed to the spool (not lost)
    "message.timeout.ms": 30000,
}
DEFAULT_SPOOL_MAX_BYTES = 512 << 20


class EventProducer:
    def __init__(
        self,
        config: dict[str, Any] | None = None,
        *,
        spool_dir: Path | str | None = None,
        spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        spool_fsync: bool = False,
        replay_interval: float = 1.0,
    ) -> None:
        self.config = {**DEFAULT_CONFIG, **(config or {}), "error_cb": self._on_error}
        self.counters: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.spool = Spool(spool_dir, max_bytes=spool_max_bytes, fsync=spool_fsync) if spool_dir else None
        self._broker_down = False
        self._purge_requested = False
        self._replay_interval = replay_interval
        self._producer = Producer(self.config)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._poll_loop, name="kafka-producer-poll", daemon=True)]
        if self.spool is not None:
            self._threads.append(threading.Thread(target=self._replay_loop, name="kafka-spool-replay", daemon=True))
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------------ the request path
    def send(self, topic: str, message: bytes, key: bytes | None = None) -> bool:
        """Queue one message without blocking. False only when it could be neither queued nor spooled."""
        if self.spool is not None and (self._broker_down or not self.spool.is_empty()):
            return self._to_spool(topic, key, message)
        try:
            self._producer.produce(topic, message, key=key, on_delivery=self._on_delivery)
        except BufferError:
            self._count("queue_full")
            return self._to_spool(topic, key, message)
        self._count("produced")
        return True

    def _to_spool(self, topic: str, key: bytes | None, value: bytes) -> bool:
        if self.spool is not None and self.spool.append(topic, key, value):
            self._count("spooled")
            return True
        self._count("dropped")
        reason = "spool full" if self.spool is not None else "no spool configured"
        log.error("event dropped topic=%s reason=%s dropped_total=%d", topic, reason, self.counters["dropped"])
        return False

    # ------------------------------------------------------------------ callbacks (poll thread)
    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:  # only with delivery.report.only.error switched off by the caller
            return
        self._count("failed")
        if err.code() != KafkaError._PURGE_QUEUE:
            log.warning("delivery failed topic=%s error=%s: spooling", msg.topic(), err.name())
        self._to_spool(msg.topic() or "", msg.key(), msg.value() or b"")

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN and not self._broker_down:
            self._broker_down = True
            self._purge_requested = self.spool is not None
            log.warning("kafka unreachable: %s; new events go to the spool", err.str())

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    # ------------------------------------------------------------------ replay (replay thread)
    def _replay_loop(self) -> None:
        assert self.spool is not None
        while not self._stop.wait(self._replay_interval):
            if self._purge_requested:
                # messages still waiting in librdkafka's memory go to disk (their callbacks spool them)
                self._purge_requested = False
                self._producer.purge(in_queue=True, in_flight=False, blocking=False)
            if self.spool.is_empty() and not self._broker_down:
                continue
            if not self._broker_reachable():
                continue
            if self._broker_down:
                self._broker_down = False
                log.info("kafka reachable again; replaying the spool bytes=%d", self.spool.size_bytes)
            try:
                self._replay_once()
            except Exception:
                log.exception("spool replay failed; will retry")

    def _broker_reachable(self) -> bool:
        try:
            self._producer.list_topics(timeout=2.0)
            return True
        except KafkaException:
            return False

    def _replay_once(self) -> None:
        assert self.spool is not None
        self.spool.rotate()
        for segment in self.spool.closed_segments():
            if self._stop.is_set() or not self._replay_segment(segment):
                return

    def _replay_segment(self, segment: Path) -> bool:
        """Send one segment; remove it only when every record was delivered. While the spool holds anything,
        new events go to the spool, so the queue flushed here holds this segment's records only."""
        assert self.spool is not None
        failed = 0

        def on_replayed(err: KafkaError | None, _msg: Message) -> None:
            nonlocal failed
            if err is not None:
                failed += 1

        sent = 0
        for topic, key, value in Spool.read(segment):
            while True:
                try:
                    self._producer.produce(topic, value, key=key, on_delivery=on_replayed)
                    break
                except BufferError:
                    self._producer.poll(0.05)  # the local queue drains as the broker acknowledges
            sent += 1
        remaining = self._producer.flush(float(self.config["message.timeout.ms"]) / 1000 + 5)
        if remaining or failed:
            log.warning("replay incomplete segment=%s failed=%d undelivered=%d of %d", segment.name, failed,
                        remaining, sent)  # fmt: skip
            return False
        self.spool.remove(segment)
        self._count("replayed", sent)
        return True

    # ------------------------------------------------------------------ lifecycle and stats
    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counters[what] += n

    def flush(self, timeout: float = 10.0) -> int:
        """Wait up to `timeout` for queued messages; return how many are still undelivered."""
        remaining: int = self._producer.flush(timeout)
        return remaining

    def close(self, timeout: float = 10.0) -> int:
        """Flush; whatever is still undelivered goes to the spool (if any). Returns what was neither."""
        remaining = self.flush(timeout)
        if remaining and self.spool is not None:
            self._producer.purge(in_queue=True, in_flight=True, blocking=True)
            self._producer.poll(0)  # run the purge callbacks: they spool the messages
            remaining = len(self._producer)
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.spool is not None:
            self.spool.close()
        if remaining:
            log.error("shutdown with undelivered events count=%d", remaining)
        log.info("producer closed %s", " ".join(f"{k}={v}" for k, v in sorted(self.stats().items())))
        return remaining

    def stats(self) -> dict[str, int]:
        with self._lock:
            counts = dict(self.counters)
        counts["queued"] = len(self._producer)
        # failures are reported one by one; whatever else left the queue was delivered (while a replay is
        # under way its records are queued too, so this runs a little behind until the queue drains)
        counts["delivered"] = max(0, counts.get("produced", 0) - counts.get("failed", 0) - counts["queued"])
        counts["spool_bytes"] = self.spool.size_bytes if self.spool is not None else 0
        counts["broker_down"] = int(self._broker_down)
        return counts


# ---------------------------------------------------------------------- the process-wide producer
_producer: EventProducer | None = None
_producer_lock = threading.Lock()
_settings: dict[str, Any] = {}


def configure_producer(
    config: dict[str, Any],
    *,
    spool_dir: Path | str | None = None,
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
    spool_fsync: bool = False,
) -> None:
    """Set the producer's librdkafka configuration and spool (before the first message)."""
    global _settings
    if _producer is not None:
        raise RuntimeError("configure_producer() must be called before the first send_message_to_kafka()")
    _settings = {"config": dict(config), "spool_dir": spool_dir, "spool_max_bytes": spool_max_bytes,
                 "spool_fsync": spool_fsync}  # fmt: skip


def get_producer() -> EventProducer:
    global _producer
    if _producer is None:
        with _producer_lock:
            if _producer is None:
                _producer = EventProducer(
                    _settings.get("config"), **{k: v for k, v in _settings.items() if k != "config"}
                )
                atexit.register(shutdown_producer)
    return _producer


def shutdown_producer(timeout: float = 10.0) -> None:
    global _producer
    with _producer_lock:
        if _producer is not None:
            _producer.close(timeout)
            _producer = None


def producer_stats() -> dict[str, int]:
    """Counters of the process-wide producer (empty before its first message)."""
    return _producer.stats() if _producer is not None else {}


def send_message_to_kafka(topic: str, message: dict[str, Any] | bytes | str, key: str | None = None) -> bool:
    """Queue `message` (a dict is sent as compact JSON) on `topic`; returns immediately."""
    if isinstance(message, dict):
        payload = encode_json(message)
    elif isinstance(message, str):
        payload = message.encode()
    else:
        payload = message
    return get_producer().send(topic, payload, key.encode() if key is not None else None)
