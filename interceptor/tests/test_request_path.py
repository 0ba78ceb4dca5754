"""The request path as it runs in production: events made in a batch at the next turn of the event loop (the
default sender), the per-thread `produced` count, and the fast timestamp formatting against datetime's."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from datetime import datetime, timezone

import httpx
import pytest
from fastapi import FastAPI

from interceptor import ApiEventMiddleware, event_schema, producer
from interceptor.events import rfc3339_millis
from interceptor.producer import EventProducer


class _FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict, bytes | None]] = []

    def send(self, topic: str, payload: bytes, key: bytes | None = None) -> bool:
        self.sent.append((topic, json.loads(payload), key))
        return True


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_with_the_producer_as_sender_events_are_queued_at_the_next_turn_of_the_loop(monkeypatch):
    fake = _FakeProducer()
    monkeypatch.setattr(producer, "_producer", fake)
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app.add_middleware(ApiEventMiddleware, service="shop", topic="t")  # the default sender: send_message_to_kafka
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        responses = await asyncio.gather(*(client.get(f"/items/{i}", headers={"x-user-id": f"u{i}"}) for i in range(5)))
        assert [r.status_code for r in responses] == [200] * 5
        await asyncio.sleep(0)  # the turn of the loop after the last response
        assert len(fake.sent) == 5
        response = await client.get("/nowhere", headers={"user-agent": "ua"})
        assert fake.sent[5:] == []  # not yet: at the next turn of the loop
        await asyncio.sleep(0)
    assert response.status_code == 404
    assert sorted(key for _, _, key in fake.sent[:5]) == [f"u{i}".encode() for i in range(5)]
    for topic, event, _ in fake.sent:
        assert topic == "t"
        assert event["duration_ms"] == round(event["duration_ms"], 3)
        assert event["response_bytes"] > 0
    topic, event, key = fake.sent[5]
    assert key == b"127.0.0.1"  # no user id: the client address
    for field in ("event_id", "event_time", "duration_ms", "response_bytes"):
        event.pop(field)
    assert event == {
        "service": "shop",
        "method": "GET",
        "route": "<unmatched>",
        "path": "/nowhere",
        "status_code": 404,
        "user_id": None,
        "client_address": "127.0.0.1",
        "user_agent": "ua",
        "schema_version": 1,
    }
    import jsonschema

    for _, sent_event, _ in fake.sent[:5]:
        jsonschema.validate(sent_event, event_schema())


@pytest.mark.anyio
async def test_a_flush_lost_with_its_loop_is_made_up_for(monkeypatch):
    """Should a loop be closed before it ran the flush scheduled on it, the events are not left behind."""
    from interceptor import asgi

    fake = _FakeProducer()
    monkeypatch.setattr(producer, "_producer", fake)
    monkeypatch.setattr(asgi, "_MAX_PENDING", 2)

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = ApiEventMiddleware(app, service="s")
    middleware._flush_scheduled = True  # as if scheduled on a loop that is gone
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=middleware), base_url="http://s") as client:
        for _ in range(3):
            await client.get("/x")
        assert [event["status_code"] for _, event, _ in fake.sent] == [204] * 3  # flushed at once, in order
        await client.get("/x")
        await asyncio.sleep(0)  # and the next one is flushed on this loop again
    assert len(fake.sent) == 4 and not middleware._pending


def test_produced_is_exact_across_threads_that_come_and_go(unreachable):
    """Each thread counts its own messages without a lock; stats() sums them, also for threads that ended."""
    p = EventProducer(unreachable)
    try:
        sends = 100

        def sender() -> None:
            for i in range(sends):
                assert p.send("http_events", f"event-{i}".encode())

        for _ in range(3):  # threads that end, each followed by more (their cells are folded into the counters)
            threads = [threading.Thread(target=sender) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        sender()  # and this thread
        assert p.stats()["produced"] == 13 * sends
        assert len(p._cells) <= 5  # this thread's cell and those of the last round's threads
    finally:
        p._producer.purge()
        p.close(timeout=1)


def test_event_time_matches_datetime_for_random_instants():
    rng = random.Random(7)
    instants = [rng.uniform(0, 4_102_444_800) for _ in range(20_000)]
    instants += [int(t) + 0.9999995 for t in instants[:1000]] + [float(int(t)) for t in instants[:1000]]
    for t in instants:
        expected = datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        assert rfc3339_millis(t) == expected, t
