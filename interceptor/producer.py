"""`send_message_to_kafka(topic, message)`: one process-wide confluent-kafka producer.

Idempotent (acks=all), compressed, batched (linger); `produce()` only appends to librdkafka's local queue, so
the request path never waits for the broker. One background thread serves delivery callbacks (`poll`);
`flush` with a timeout runs once at shutdown. Counters say what happened to every message.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
from collections import Counter
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

log = logging.getLogger("interceptor.producer")

DEFAULT_CONFIG: dict[str, Any] = {
    "bootstrap.servers": "127.0.0.1:9092",
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 20,
    "batch.num.messages": 10000,
    "queue.buffering.max.messages": 200000,
    # keep retrying while the broker is away; a message that still fails is reported, never silently lost
    "message.timeout.ms": 300000,
}


class EventProducer:
    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config = {**DEFAULT_CONFIG, **(config or {})}
        self.counters: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._producer = Producer(self.config)
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="kafka-producer-poll", daemon=True)
        self._poller.start()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self._count("delivered")
        else:
            self._count("failed")
            log.error("delivery failed topic=%s error=%s", msg.topic(), err.str())

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counters[what] += n

    def send(self, topic: str, message: bytes, key: bytes | None = None) -> bool:
        """Queue one message; never blocks. False when the local queue is full (back-pressure)."""
        try:
            self._producer.produce(topic, message, key=key, on_delivery=self._on_delivery)
        except BufferError:
            self._count("queue_full")
            log.warning("local queue full topic=%s queued=%d", topic, len(self._producer))
            return False
        self._count("produced")
        return True

    def flush(self, timeout: float = 10.0) -> int:
        """Wait up to `timeout` for queued messages; return how many are still undelivered."""
        remaining: int = self._producer.flush(timeout)
        return remaining

    def close(self, timeout: float = 10.0) -> int:
        remaining = self.flush(timeout)
        self._stop.set()
        self._poller.join(timeout=2)
        if remaining:
            log.error("shutdown with undelivered messages count=%d", remaining)
        return remaining

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counters) | {"queued": len(self._producer)}


_producer: EventProducer | None = None
_producer_lock = threading.Lock()
_config: dict[str, Any] = {}


def configure_producer(config: dict[str, Any]) -> None:
    """Set the producer's librdkafka configuration (before the first message)."""
    global _config
    if _producer is not None:
        raise RuntimeError("configure_producer() must be called before the first send_message_to_kafka()")
    _config = dict(config)


def get_producer() -> EventProducer:
    global _producer
    if _producer is None:
        with _producer_lock:
            if _producer is None:
                _producer = EventProducer(_config)
                atexit.register(shutdown_producer)
    return _producer


def shutdown_producer(timeout: float = 10.0) -> None:
    global _producer
    with _producer_lock:
        if _producer is not None:
            _producer.close(timeout)
            _producer = None


def send_message_to_kafka(topic: str, message: dict[str, Any] | bytes | str, key: str | None = None) -> bool:
    """Queue `message` (a dict is sent as compact JSON) on `topic`; returns immediately."""
    if isinstance(message, dict):
        payload = json.dumps(message, separators=(",", ":")).encode()
    elif isinstance(message, str):
        payload = message.encode()
    else:
        payload = message
    return get_producer().send(topic, payload, key.encode() if key is not None else None)
