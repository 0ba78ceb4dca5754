"""`kafka_lifespan` on FastAPI and Starlette: the producer starts with the app (before the first request), the
app's own lifespan runs inside it, and at shutdown what Kafka did not take is flushed to the spool."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from interceptor import ApiEventMiddleware, kafka_lifespan, producer_stats
from interceptor.spool import Spool


def _spooled_values(directory) -> list[bytes]:
    return [value for segment in sorted(directory.glob("*.spool")) for _, _, value in Spool.read(segment)]


def test_fastapi_lifespan_starts_and_flushes_the_producer(tmp_path, unreachable):
    spool = tmp_path / "spool"
    seen: list[str] = []

    @asynccontextmanager
    async def own(app: FastAPI):
        seen.append("app started")
        yield {"greeting": "hello"}
        seen.append("app stopped")

    app = FastAPI(lifespan=kafka_lifespan(unreachable, spool_dir=spool, flush_timeout=1, lifespan=own))
    app.add_middleware(ApiEventMiddleware, service="shop", topic="http_events")

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    assert producer_stats() == {}
    with TestClient(app) as client:
        assert producer_stats() != {}  # started with the app, not on the first request
        assert seen == ["app started"]
        for i in range(5):
            assert client.get(f"/items/{i}").status_code == 200
    assert seen == ["app started", "app stopped"]
    assert producer_stats() == {}  # closed at shutdown
    # the broker is unreachable: every event is in the spool, none lost
    assert sorted(v.count(b'"route":"/items/{item_id}"') for v in _spooled_values(spool)) == [1] * 5


def test_starlette_lifespan_and_state(tmp_path, unreachable):
    @asynccontextmanager
    async def own(app: Starlette):
        yield {"answer": 42}

    async def answer(request):
        return PlainTextResponse(str(request.state.answer))

    lifespan = kafka_lifespan(unreachable, spool_dir=tmp_path, flush_timeout=1, lifespan=own)
    app = Starlette(routes=[Route("/answer", answer)], lifespan=lifespan)
    app.add_middleware(ApiEventMiddleware, service="starlette-svc")
    with TestClient(app) as client:
        assert client.get("/answer").text == "42"
    [value] = _spooled_values(tmp_path)
    assert b'"service":"starlette-svc"' in value and b'"route":"/answer"' in value
