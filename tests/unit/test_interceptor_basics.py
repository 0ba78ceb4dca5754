"""The middleware turns a request into exactly the contract's event, without touching the response."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from interceptor import ApiEventMiddleware


def _app(sent: list) -> FastAPI:
    app = FastAPI()

    @app.get("/users/{user_id}")
    async def user(user_id: str) -> dict[str, str]:
        return {"id": user_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("app bug")

    app.add_middleware(
        ApiEventMiddleware,
        service="svc",
        topic="t",
        sender=lambda topic, event, key=None: sent.append((topic, event, key)),
    )
    return app


@pytest.mark.anyio
async def test_event_fields_for_a_known_request():
    sent: list = []
    transport = httpx.ASGITransport(app=_app(sent))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get(
            "/users/42?token=secret",
            headers={"x-user-id": "u1", "authorization": "Bearer secret", "cookie": "session=secret"},
        )
    assert response.json() == {"id": "42"}
    [(topic, event, key)] = sent
    assert topic == "t" and key == "u1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["event_time"])
    assert (event["service"], event["method"], event["route"], event["path"]) == (
        "svc",
        "GET",
        "/users/{user_id}",
        "/users/42",
    )
    assert (event["status_code"], event["user_id"], event["response_bytes"]) == (200, "u1", len(response.content))
    assert "secret" not in repr(event)


@pytest.mark.anyio
async def test_app_exception_still_yields_a_500_event_and_propagates():
    sent: list = []
    transport = httpx.ASGITransport(app=_app(sent), raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        with pytest.raises(RuntimeError, match="app bug"):
            await client.get("/boom")
    [(_, event, _)] = sent
    assert event["status_code"] == 500 and event["route"] == "/boom"


@pytest.fixture
def anyio_backend():
    return "asyncio"
