"""The interceptor against a real Kafka broker started by the platform's own CLI (`python -m infra up kafka`):
no event lost, none invented, while the broker runs, while it is stopped for 20 s, and across a SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic
from fastapi import FastAPI

from config.settings import REPO_ROOT
from infra import process, sandbox
from interceptor import ApiEventMiddleware, configure_producer, producer_stats, send_message_to_kafka, shutdown_producer
from interceptor.spool import Spool

pytestmark = pytest.mark.slow


class Broker:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.servers = f"127.0.0.1:{env['PIPELINE_KAFKA__PORT']}"

    def cli(self, *args: str) -> None:
        proc = subprocess.run([sys.executable, "-m", "infra", *args], cwd=REPO_ROOT, env=self.env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]

    def new_topic(self) -> str:
        name = f"itest-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": self.servers})
        admin.create_topics([NewTopic(name, 3, 1)])[name].result(timeout=30)
        return name

    def events(self, topic: str, done: Callable[[list[dict]], bool], timeout: float = 120) -> list[dict]:
        """Every event on the topic (duplicates kept), reading until `done(events)` holds and 3 s passed without
        a message, or `timeout`."""
        consumer = Consumer({"bootstrap.servers": self.servers, "group.id": uuid.uuid4().hex,
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
        consumer.subscribe([topic])
        events: list[dict] = []
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        try:
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None or msg.error():
                    if done(events) and time.monotonic() - quiet_since > 3:
                        break
                    continue
                events.append(json.loads(msg.value()))
                quiet_since = time.monotonic()
        finally:
            consumer.close()
        return events

    def event_ids(self, topic: str, expected: int, timeout: float = 120) -> list[str]:
        """Every event_id on the topic (duplicates kept), reading until `expected` or `timeout`."""
        return [e["event_id"] for e in self.events(topic, lambda events: len(events) >= expected, timeout)]


@contextmanager
def running_broker(prefix: str) -> Iterator[Broker]:
    """A broker of its own (`python -m infra up kafka` in a sandbox: free ports, its own var/), removed after."""
    var_dir = sandbox.scratch_var_dir(prefix)
    b = Broker(sandbox.environment(var_dir))
    b.cli("up", "kafka")
    try:
        yield b
    finally:
        subprocess.run([sys.executable, "-m", "infra", "down", "kafka"], cwd=REPO_ROOT, env=b.env, timeout=300)
        shutil.rmtree(var_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    with running_broker("itest-kafka-") as b:
        yield b


def _app(topic: str, recorded: list[str]) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    def sender(topic: str, event: dict, key: str | None = None) -> None:
        recorded.append(event["event_id"])
        send_message_to_kafka(topic, event, key=key)

    app.add_middleware(ApiEventMiddleware, service="itest", topic=topic, sender=sender)
    return app


async def _drive(app: FastAPI, count: int, concurrency: int = 50, pause: float = 0.0) -> list[int]:
    statuses: list[int] = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        queue = iter(range(count))

        async def worker() -> None:
            for i in queue:
                statuses.append((await client.get(f"/items/{i}")).status_code)
                if pause:
                    await asyncio.sleep(pause)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}: {producer_stats()}")


def test_10000_requests_give_exactly_their_10000_events(broker, tmp_path):
    topic = broker.new_topic()
    configure_producer({"bootstrap.servers": broker.servers}, spool_dir=tmp_path / "spool")
    recorded: list[str] = []
    try:
        statuses = asyncio.run(_drive(_app(topic, recorded), 10_000))
        _wait(lambda: producer_stats().get("delivered", 0) == 10_000, 60, "10,000 deliveries")
    finally:
        shutdown_producer()
    assert statuses.count(200) == 10_000
    ids = broker.event_ids(topic, 10_000)
    assert len(ids) == 10_000
    assert set(ids) == set(recorded) and len(set(recorded)) == 10_000


def test_broker_stopped_for_20_seconds_loses_nothing(broker, tmp_path):
    topic = broker.new_topic()
    configure_producer({"bootstrap.servers": broker.servers, "reconnect.backoff.max.ms": 500},
                       spool_dir=tmp_path / "spool")  # fmt: skip
    recorded: list[str] = []
    app = _app(topic, recorded)

    def outage() -> None:
        time.sleep(4)
        broker.cli("down", "kafka")
        time.sleep(20)
        broker.cli("up", "kafka")

    import threading

    thread = threading.Thread(target=outage)
    try:
        thread.start()
        started = time.monotonic()
        # ~200 requests/s for the whole outage and a little after it
        statuses = asyncio.run(_drive(app, 7_000, concurrency=10, pause=0.05))
        thread.join()
        elapsed = time.monotonic() - started
        _wait(lambda: producer_stats().get("spool_bytes", 1) == 0 and producer_stats().get("replayed", 0) > 0,
              120, "the spool to be replayed")  # fmt: skip
        stats = producer_stats()
    finally:
        thread.join()
        shutdown_producer()
    assert elapsed > 24, "the traffic must span the whole outage"
    assert statuses.count(200) == len(statuses) == 7_000
    assert stats["spooled"] > 0 and stats.get("dropped", 0) == 0
    ids = broker.event_ids(topic, len(recorded))
    assert set(ids) == set(recorded), f"missing {len(set(recorded) - set(ids))} events; stats {stats}"


def test_sigkill_mid_traffic_loses_nothing_that_was_spooled(broker, tmp_path):
    topic = broker.new_topic()
    spool_dir, ids_file = tmp_path / "spool", tmp_path / "ids.txt"
    away = f"127.0.0.1:{process.free_port()}"  # Kafka is away for the child: it must spool
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("interceptor_child.py")), away, str(spool_dir),
         str(ids_file), topic],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    try:
        _wait(lambda: ids_file.exists() and len(ids_file.read_text().splitlines()) >= 1500, 60, "child traffic")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    recorded = set(ids_file.read_text().split())
    spool = Spool(spool_dir, max_bytes=1 << 30)
    import json

    spooled = {json.loads(v)["event_id"] for seg in spool.closed_segments() for _, _, v in Spool.read(seg)}
    assert len(spooled) > 1000 and spooled <= recorded
    # a new process with the same spool, and Kafka back: the spool is replayed
    configure_producer({"bootstrap.servers": broker.servers}, spool_dir=spool_dir)
    try:
        send_message_to_kafka(topic, b'{"event_id": "after-restart"}')
        _wait(lambda: producer_stats().get("spool_bytes", 1) == 0, 60, "the replay")
    finally:
        shutdown_producer()
    arrived = set(broker.event_ids(topic, len(spooled) + 1))
    assert spooled <= arrived, f"{len(spooled - arrived)} spooled events lost"
    assert "after-restart" in arrived
