"""The ASGI middleware: exact events, an untouched response, and no secret in any event or log line."""

from __future__ import annotations

import json
import logging
import random
import re

import httpx
import jsonschema
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from interceptor import ApiEventMiddleware, create_api_event_middleware, event_schema
from interceptor.events import anonymise_address

SCHEMA = event_schema()
SECRETS = ["Bearer s3cr3t-bearer", "session=s3cr3t-cookie", "s3cr3t-apikey", "s3cr3t-query-token", "s3cr3t-pw"]


def _app(sent: list, **options) -> FastAPI:
    app = FastAPI()

    @app.get("/users/{user_id}")
    async def user(user_id: str) -> dict[str, str]:
        return {"id": user_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("app bug")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks():
            for i in range(5):
                yield f"chunk-{i};".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    options.setdefault("sender", lambda topic, event, key=None: sent.append((topic, event, key)))
    app.add_middleware(ApiEventMiddleware, service="svc", topic="t", **options)
    return app


async def _get(app, path, **kwargs):
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=kwargs.pop("raise_app_exceptions", True))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, **kwargs)


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_event_fields_for_a_known_request():
    sent: list = []
    response = await _get(
        _app(sent),
        "/users/42?page=2",
        headers={
            "x-user-id": "u1",
            "user-agent": "pytest-agent",
            "referer": "https://shop.example/cart?coupon=abc",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        },
    )
    assert response.json() == {"id": "42"}
    [(topic, event, key)] = sent
    jsonschema.validate(event, SCHEMA)
    assert topic == "t" and key == "u1"
    assert re.fullmatch(r"[0-9a-f]{32}", event.pop("event_id"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event.pop("event_time"))
    assert 0 <= event.pop("duration_ms") < 5000
    assert event == {
        "service": "svc",
        "method": "GET",
        "route": "/users/{user_id}",
        "path": "/users/42",
        "status_code": 200,
        "user_id": "u1",
        "client_address": "127.0.0.1",
        "user_agent": "pytest-agent",
        "referer": "https://shop.example/cart",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "response_bytes": len(response.content),
        "schema_version": 1,
    }


@pytest.mark.anyio
async def test_unmatched_requests_share_one_route_value_and_keep_their_path():
    """A scanner probing 1,000 random paths adds one route value, not 1,000; each event keeps its path."""
    sent: list = []
    app = _app(sent)
    rng = random.Random(18)
    paths = {"/" + "/".join(f"{rng.getrandbits(40):x}" for _ in range(rng.randint(1, 4))) for _ in range(1000)}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
        for path in paths:
            assert (await client.get(path)).status_code == 404
    assert len(sent) == len(paths) == 1000
    assert {event["route"] for _, event, _ in sent} == {"<unmatched>"}
    assert {event["path"] for _, event, _ in sent} == paths
    assert {event["status_code"] for _, event, _ in sent} == {404}


@pytest.mark.anyio
async def test_the_unmatched_route_value_is_configurable():
    sent: list = []
    response = await _get(_app(sent, unmatched_route="(none)"), "/nowhere")
    assert response.status_code == 404
    assert (sent[0][1]["route"], sent[0][1]["path"]) == ("(none)", "/nowhere")


@pytest.mark.anyio
async def test_app_exception_yields_a_500_event_and_the_error_is_unchanged():
    sent: list = []
    with pytest.raises(RuntimeError, match=r"^app bug$"):
        await _get(_app(sent), "/boom")
    [(_, event, _)] = sent
    assert (event["status_code"], event["route"]) == (500, "/boom")
    jsonschema.validate(event, SCHEMA)


@pytest.mark.anyio
async def test_streaming_response_passes_through_untouched():
    sent: list = []
    response = await _get(_app(sent), "/stream")
    assert response.text == "".join(f"chunk-{i};" for i in range(5))
    assert sent[0][1]["response_bytes"] == len(response.content)


@pytest.mark.anyio
@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
async def test_non_http_scopes_pass_through_untouched(scope_type):
    seen = []

    async def inner(scope, receive, send):
        seen.append((scope, receive, send))

    sent: list = []
    middleware = create_api_event_middleware(inner, service="svc", sender=lambda *a, **k: sent.append(a))
    scope, receive, send = {"type": scope_type, "path": "/ws"}, object(), object()
    await middleware(scope, receive, send)
    assert seen == [(scope, receive, send)] and sent == []


@pytest.mark.anyio
async def test_a_failing_producer_never_breaks_a_request(caplog):
    def broken_sender(*args, **kwargs):
        raise RuntimeError("kafka client exploded")

    app = _app([], sender=broken_sender)
    with caplog.at_level(logging.ERROR, logger="interceptor"):
        response = await _get(app, "/users/7")
    assert response.status_code == 200 and response.json() == {"id": "7"}
    assert "could not record the request event" in caplog.text


@pytest.mark.anyio
async def test_planted_secrets_reach_no_event_and_no_log_line(caplog):
    sent: list = []
    app = _app(
        sent,
        capture_headers=["Authorization", "Cookie", "X-Api-Key", "X-Forwarded-For", "X-Session-Id"],
        capture_query_params=["token", "page", "password", "api_key"],
        deny_headers=["x-forwarded-for"],
    )
    headers = {
        "authorization": SECRETS[0],
        "cookie": SECRETS[1],
        "x-api-key": SECRETS[2],
        "x-forwarded-for": "10.0.0.9",
        "x-session-id": SECRETS[4],
        "referer": f"https://shop.example/?token={SECRETS[3]}",
    }
    query = f"/users/1?page=3&token={SECRETS[3]}&password={SECRETS[4]}&api_key={SECRETS[2]}"
    with caplog.at_level(logging.DEBUG):
        await _get(app, query, headers=headers)
        # an observer failure is logged: its line must not leak anything either
        await _get(_app([], sender=lambda *a, **k: 1 / 0), query, headers=headers)
    [(_, event, _)] = sent
    jsonschema.validate(event, SCHEMA)
    assert event["query"] == {"page": "3"}
    assert "headers" not in event  # every captured header was denied (x-forwarded-for by deny_headers)
    assert event["path"] == "/users/1" and event["referer"] == "https://shop.example/"
    # our log lines (the test client's own httpx log shows the URL it requested: not ours)
    ours = "\n".join(caplog.handler.format(r) for r in caplog.records if r.name.startswith("interceptor"))
    assert "could not record the request event" in ours
    dumped = json.dumps(event) + ours
    for secret in SECRETS:
        assert secret not in dumped
        assert secret.split("=")[-1].split(" ")[-1] not in dumped


@pytest.mark.anyio
async def test_anonymised_client_and_user_id_from_a_callable():
    sent: list = []
    app = _app(sent, anonymise_client=True, user_id_getter=lambda scope: "from-callable")
    await _get(app, "/users/1")
    event = sent[0][1]
    assert event["client_address"] == "127.0.0.0" and event["user_id"] == "from-callable"
    # without a user id the Kafka key is the client address: the anonymised one, never the raw one
    sent.clear()
    await _get(_app(sent, anonymise_client=True, user_id_header=None), "/users/1")
    assert sent[0][2] == "127.0.0.0"
    assert anonymise_address("2001:db8:1:2:3:4:5:6") == "2001:db8:1::"
    assert anonymise_address("not-an-ip") is None


def test_event_time_is_rfc3339_utc_with_milliseconds():
    from datetime import datetime, timezone

    from interceptor.events import rfc3339_millis

    assert rfc3339_millis(0.0) == "1970-01-01T00:00:00.000Z"
    for t in (1_795_600_000.9999, 1_795_600_000.9999996, 1_795_600_001.5, 1_795_600_001.001, 1_795_600_002.0456):
        expected = datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        assert rfc3339_millis(t) == expected
