"""The Django middleware on a Django project (this module is its URLconf): the same event as the ASGI and WSGI
middlewares, routes from Django's URL patterns, streaming responses counted, sync and async, and the producer
configured from settings."""

from __future__ import annotations

import asyncio
import json

import django
import jsonschema
import pytest
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["interceptor.django.ApiEventDjangoMiddleware"],
        INTERCEPTOR={"service": "django-svc"},
        SECRET_KEY="test-only",
        USE_TZ=True,
    )
    django.setup()

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import include, path

from interceptor import event_schema, producer_stats, shutdown_producer
from interceptor.django import django_route_template


def user(request, user_id: int) -> JsonResponse:
    return JsonResponse({"id": user_id})


def files(request, name: str) -> StreamingHttpResponse:
    return StreamingHttpResponse((f"part-{i};".encode() for i in range(3)), content_type="text/plain")


def boom(request) -> HttpResponse:
    raise RuntimeError("app bug")


async def slow(request, n: int) -> JsonResponse:
    await asyncio.sleep(0.01)
    return JsonResponse({"n": n})


urlpatterns = [
    path("users/<int:user_id>", user),
    path("files/<path:name>", files),
    path("boom", boom),
    path("api/", include([path("async/<int:n>/", slow)])),
]


@pytest.fixture
def sent():
    events: list = []
    options = {"service": "django-svc", "sender": lambda topic, event, key=None: events.append((topic, event, key))}
    with override_settings(INTERCEPTOR=options):
        yield events


def test_event_for_a_known_request(sent):
    response = Client().get("/users/5?page=1", HTTP_X_USER_ID="u9", HTTP_AUTHORIZATION="Bearer secret")
    assert response.json() == {"id": 5}
    [(topic, event, key)] = sent
    jsonschema.validate(event, event_schema())
    assert (topic, key) == ("http_events", "u9")
    assert (event["service"], event["method"], event["status_code"]) == ("django-svc", "GET", 200)
    assert (event["route"], event["path"]) == ("/users/{user_id}", "/users/5")
    assert event["response_bytes"] == len(response.content)
    assert "secret" not in json.dumps(event)


def test_unmatched_requests_share_one_route_value(sent):
    client = Client()
    paths = [f"/probe/{i}/.env" for i in range(50)]
    for p in paths:
        assert client.get(p).status_code == 404
    assert {event["route"] for _, event, _ in sent} == {"<unmatched>"}
    assert [event["path"] for _, event, _ in sent] == paths


def test_a_streamed_body_is_counted_and_the_event_follows_the_last_chunk(sent):
    response = Client().get("/files/a/b.txt")
    assert sent == []  # not complete yet
    assert b"".join(response.streaming_content) == b"part-0;part-1;part-2;"
    [(_, event, _)] = sent
    assert (event["route"], event["response_bytes"]) == ("/files/{name}", 21)


def test_an_exception_in_a_view_yields_a_500_event(sent):
    response = Client(raise_request_exception=False).get("/boom")
    assert response.status_code == 500
    [(_, event, _)] = sent
    assert (event["status_code"], event["route"]) == (500, "/boom")


def test_async_views_under_asgi_and_included_patterns(sent):
    async def requests() -> list[int]:
        client = AsyncClient()
        return [(await client.get(f"/api/async/{n}/")).status_code for n in range(5)]

    assert asyncio.run(requests()) == [200] * 5
    assert [event["route"] for _, event, _ in sent] == ["/api/async/{n}/"] * 5
    assert all(event["duration_ms"] >= 10 for _, event, _ in sent)


def test_a_failing_sender_never_breaks_a_request():
    def broken(topic, event, key=None):
        raise RuntimeError("kafka client bug")

    with override_settings(INTERCEPTOR={"service": "s", "sender": broken}):
        assert Client().get("/users/1").status_code == 200


def test_the_producer_is_configured_from_settings(tmp_path, unreachable):
    producer = {"config": unreachable, "spool_dir": str(tmp_path / "spool")}
    try:
        with override_settings(INTERCEPTOR={"service": "s", "producer": producer}):
            assert Client().get("/users/1").status_code == 200
            stats = producer_stats()
            assert stats.get("produced", 0) + stats.get("spooled", 0) >= 1, stats  # the producer runs
    finally:
        shutdown_producer(timeout=1)
    assert any((tmp_path / "spool").iterdir())  # the undeliverable event went to the configured spool


@pytest.mark.parametrize(
    ("pattern", "template"),
    [("users/<int:user_id>", "/users/{user_id}"), ("a/<slug:s>/b/<x>/", "/a/{s}/b/{x}/"), ("", "/")],
)
def test_route_templates(pattern, template):
    assert django_route_template(pattern) == template
