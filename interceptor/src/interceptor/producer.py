"""`send_message_to_kafka(topic, message)`: one process-wide confluent-kafka producer that never blocks the
request path and, with a spool directory, loses no event while Kafka is away.

- Idempotent (acks=all), compressed, batched (linger); `produce()` only appends to librdkafka's local queue.
- Delivery reports come for failures only (`delivery.report.only.error`): a Python callback per delivered
  message would cost the request path's core as much as the rest of the interceptor together. One background
  thread serves them (`poll`); `flush` with a timeout runs once at shutdown. Delivered = produced - failed -
  still queued (exact once the queue is drained).
- With `spool_dir`, every message that cannot go to Kafka goes to a durable on-disk spool: when the local
  queue is full, when delivery fails, and for as long as the broker is down (new messages then go straight
  to disk, so a crash loses none of them). While this process has records of its own in the spool
  (`spool.holding`, read without a lock), new messages are appended behind them: its order is kept.
- The processes of one app (workers) may share a spool directory: each writes segments of its own, and the
  replay thread of each sends, oldest first, every segment no live process holds (its own closed ones and
  those of workers that died) through a producer of its own, once the broker answers again. A replayed
  segment is removed only when all of its records were delivered, so a crash during a replay can send a
  record twice; the pipeline counts each `event_id` once. When only its open segment is left, the process
  hands those records to the queue and sends new messages straight to Kafka again (the segment stays on disk
  until they left the queue). Other workers' segments never keep a process off that path.
- The spool's size is bounded; a message that does not fit is dropped, counted and logged.
- A process forked after the producer started (gunicorn --preload) gets a producer of its own.

Counters (`stats()`): produced, delivered, failed, spooled, replayed, dropped, queue_full, queued.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

try:  # orjson (a dependency of the platform) encodes an event in a tenth of the standard library's time; it is
    # called as it is, with no function of ours around it (one Python call less per event)
    from orjson import dumps as encode_json
except ImportError:  # pragma: no cover - the interceptor copied into an app without orjson

    def encode_json(message: dict[str, Any]) -> bytes:  # type: ignore[misc]
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


from interceptor.spool import Claim, Spool

log = logging.getLogger("interceptor.producer")

DEFAULT_CONFIG: dict[str, Any] = {
    "bootstrap.servers": "127.0.0.1:9092",
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "lz4",
    # 50 ms, not 20: fewer, bigger produce requests. Per event at 5,000 events/s librdkafka's broker thread (on the
    # app's core) spends ~0.6 us instead of ~1.2, the broker ~2.5 us instead of ~4. Longer saves little more and
    # makes the bursts of delivery reports (each takes the GIL) long enough to show in a request's p99.
    "linger.ms": 50,
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
        self._replayer: Producer | None = None  # replays segments; made on the first replay
        self._replayer_broken = False
        self._replay_failures = 0  # incomplete replays in a row
        self._renew_requested = False
        self._renewing = False
        self._queue_was_empty = False
        if self.spool is not None:
            self.spool.forward = self._forward
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._poll_loop, name="kafka-producer-poll", daemon=True)]
        if self.spool is not None:
            self._threads.append(threading.Thread(target=self._replay_loop, name="kafka-spool-replay", daemon=True))
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------------ the request path
    def send(self, topic: str, message: bytes, key: bytes | None = None) -> bool:
        """Queue one message without blocking. False only when it could be neither queued nor spooled."""
        if self.spool is not None and (self._broker_down or self.spool.holding):
            return self._to_spool(topic, key, message)
        try:
            # positional (partition -1: the partitioner's choice): parsing keywords took a third of produce()
            self._producer.produce(topic, message, key, -1, self._on_delivery)
        except BufferError:
            self._count("queue_full")
            return self._to_spool(topic, key, message)
        except KafkaException:  # a fatal error not yet reported by its callback: the spool takes the event
            return self._to_spool(topic, key, message)
        try:
            self._produced.cell[0] += 1  # this thread's own count: no lock per message (see _count_produced)
        except AttributeError:  # this thread's first message
            self._count_produced()
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
        if err.fatal():  # e.g. an idempotence error: this producer is done; events go to the spool until a new one
            log.error("kafka producer fatal error: %s; a new producer takes over", err.str())
            self._renew_requested = True
            self._broker_down = self.spool is not None
            return
        if err.code() == KafkaError._ALL_BROKERS_DOWN and not self._broker_down:
            self._broker_down = True
            self._purge_requested = self.spool is not None
            log.warning("kafka unreachable: %s; new events go to the spool", err.str())

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            if self._renew_requested:
                self._renew_producer()
            self._producer.poll(0.1)

    def _renew_producer(self) -> None:
        """Replace a producer that hit a fatal error: new sends go to the new one (one attribute read); what the old
        one still holds fails through its callbacks into the spool."""
        self._renewing = True
        self._renew_requested = False
        try:
            old, self._producer = self._producer, Producer(self.config)
            time.sleep(0.2)  # a send that read the old producer just before the swap is done with it
            for _ in range(50):
                old.purge(in_queue=True, in_flight=True, blocking=True)
                old.poll(0)  # the purged messages' callbacks spool them
                if not len(old):
                    break
                time.sleep(0.1)
            log.warning("kafka producer replaced; still undelivered in the old one: %d", len(old))
        finally:
            self._renewing = False

    # ------------------------------------------------------------------ replay (replay thread)
    def _replay_loop(self) -> None:
        assert self.spool is not None
        while not self._stop.wait(self._replay_interval):
            if self._purge_requested:
                # messages still waiting in librdkafka's memory go to disk (their callbacks spool them)
                self._purge_requested = False
                self._producer.purge(in_queue=True, in_flight=False, blocking=False)
            try:
                self.spool.refresh()
                self._release_handed()
            except Exception:
                log.exception("spool scan failed; will retry")
            if self.spool.is_empty() and not self._broker_down:
                continue
            if self._renew_requested or not self._broker_reachable():
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
        """Replay every segment no live process holds (this process's closed ones, and those of workers that died),
        oldest first, each writer's in order; then hand this process's open segment to the queue, so new events
        go straight to Kafka."""
        assert self.spool is not None
        for _ in range(4):
            for claim in self.spool.claims():
                with claim:
                    if self._stop.is_set() or not self._replay_segment(claim):
                        return
            handed = self.spool.hand_off(self._delivery_timeout())
            if handed is not None:
                if handed:
                    self._queue_was_empty = False
                    self._count("replayed", handed)
                    log.info("spool replayed; new events go straight to kafka handed_off=%d", handed)
                return
            if self.spool.has_own_segments():
                return  # another process replays them now: hand off in a later round
            self.spool.rotate()  # the open segment is too big to hand off: replay it like the others

    def _replay_segment(self, claim: Claim) -> bool:
        """Send one segment through the replay producer (its queue holds this segment's records only); remove it
        only when every record was delivered."""
        if self._replayer is None:
            self._replayer = Producer({**self.config, "error_cb": self._on_replay_error})
        producer = self._replayer
        failed = 0

        def on_replayed(err: KafkaError | None, _msg: Message) -> None:
            nonlocal failed
            if err is not None:
                failed += 1

        sent = 0
        for topic, key, value in claim.records():
            while True:
                try:
                    producer.produce(topic, value, key=key, on_delivery=on_replayed)
                    break
                except BufferError:
                    producer.poll(0.05)  # the local queue drains as the broker acknowledges
            sent += 1
        remaining = producer.flush(self._delivery_timeout())
        if self._replayer_broken:  # a fatal error: the next replay makes a new replay producer
            self._replayer, self._replayer_broken = None, False
            log.warning("replay incomplete segment=%s: the replay producer failed", claim.path.name)
            return False
        if remaining or failed:
            log.warning("replay incomplete segment=%s failed=%d undelivered=%d of %d", claim.path.name, failed,
                        remaining, sent)  # fmt: skip
            self._replay_failures += 1
            if self._replay_failures >= 2:  # the broker answers, yet this client delivers nothing: a fresh one
                self._replayer, self._replay_failures = None, 0
            return False
        self._replay_failures = 0
        claim.remove()
        self._count("replayed", sent)
        return True

    def _on_replay_error(self, err: KafkaError) -> None:
        if err.fatal():
            log.error("kafka replay producer fatal error: %s; a new one takes over", err.str())
            self._replayer_broken = True
        else:
            self._on_error(err)

    def _forward(self, topic: str, key: bytes | None, value: bytes) -> bool:
        """The spool's hand-off: a record goes to the producer's queue (a failed delivery spools it again)."""
        if self._broker_down:
            return False
        try:
            self._producer.produce(topic, value, key=key, on_delivery=self._on_delivery)
        except (BufferError, KafkaException):
            return False
        return True

    def _release_handed(self) -> None:
        """Handed-off segments are removed once their records left the queue: when it was seen empty twice, a
        round apart (a failure's callback has spooled the record again by then), else after the delivery timeout."""
        assert self.spool is not None
        if not self.spool.handed:
            return
        if self._renew_requested or self._renewing:  # the old producer's records are being spooled again
            self._queue_was_empty = False
            return
        empty = len(self._producer) == 0
        self.spool.release_handed(force=empty and self._queue_was_empty)
        self._queue_was_empty = empty

    def _delivery_timeout(self) -> float:
        return float(self.config["message.timeout.ms"]) / 1000 + 5

    # ------------------------------------------------------------------ lifecycle and stats
    def _count(self, what: str, n: int = 1) -> None:
        """The rare paths' counts (queue full, spooled, dropped, failed, replayed), under the lock."""
        with self._lock:
            self.counters[what] += n

    def _count_produced(self) -> None:
        """The first message a thread produced. `produced`, the one count of the request path, is kept per thread:
        each thread adds to a cell of its own, with no lock, and stats() sums the cells (an int is read whole).
        Made here on first use, with the cells' list; a thread that ended has its (final) count moved into
        `counters`, so threads made per request leave no cells behind."""
        cell = [1]
        with self._lock:
            if not hasattr(self, "_cells"):
                self._produced = threading.local()
                self._cells: list[tuple[threading.Thread, list[int]]] = []
            cells = []
            for thread, other in self._cells:
                if thread.is_alive():
                    cells.append((thread, other))
                else:
                    self.counters["produced"] += other[0]
            cells.append((threading.current_thread(), cell))
            self._cells = cells
        self._produced.cell = cell

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
        if self._replayer is not None and len(self._replayer):
            self._replayer.flush(min(timeout, 5.0))  # a replay cut short: its segment stays and is sent again
        if self.spool is not None:
            if not remaining:  # every handed-off record was delivered or spooled again
                self.spool.release_handed(force=True)
            self.spool.close()
        if remaining:
            log.error("shutdown with undelivered events count=%d", remaining)
        log.info("producer closed %s", " ".join(f"{k}={v}" for k, v in sorted(self.stats().items())))
        return remaining

    def stats(self) -> dict[str, int]:
        with self._lock:
            counts = dict(self.counters)
            produced = counts.get("produced", 0) + sum(cell[0] for _, cell in getattr(self, "_cells", ()))
        if produced:
            counts["produced"] = produced
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
_inherited: list[EventProducer] = []  # in a forked child: the parent's producer, never used nor destroyed


def _after_fork_in_child() -> None:
    """A process forked after the producer started (gunicorn --preload, multiprocessing's fork) gets a producer of
    its own on its next send. librdkafka's threads do not survive a fork, so the parent's producer is neither
    used nor closed nor destroyed here (destroying it would wait for threads that do not exist); the spool closed
    the child's copies of its segment descriptors already (interceptor.spool)."""
    global _producer, _producer_lock
    _producer_lock = threading.Lock()
    if _producer is not None:
        _inherited.append(_producer)
        try:  # a reference no interpreter shutdown drops: its librdkafka handles are never destroyed in the child
            import ctypes

            ctypes.pythonapi.Py_IncRef(ctypes.py_object(_producer))
        except Exception:  # pragma: no cover - an interpreter without ctypes.pythonapi
            pass
        _producer = None


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


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
    producer = _producer
    if producer is None:
        producer = get_producer()
    if isinstance(message, dict):
        payload = encode_json(message)
    elif isinstance(message, str):
        payload = message.encode()
    else:
        payload = message
    return producer.send(topic, payload, None if key is None else key.encode())
