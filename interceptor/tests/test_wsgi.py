"""The WSGI twin on a Flask app: the same event, route templates from Flask's URL rules."""

from __future__ import annotations

import json

import jsonschema
import pytest
from flask import Flask, Response

from interceptor import create_wsgi_api_event_middleware, event_schema
from interceptor.wsgi import instrument_flask

SCHEMA = event_schema()


def _client(sent: list, **options):
    app = Flask(__name__)

    @app.get("/users/<int:user_id>")
    def user(user_id: int):
        return {"id": user_id}

    @app.get("/files/<path:name>")
    def files(name: str):
        return Response((f"part-{i};" for i in range(3)), mimetype="text/plain")

    @app.get("/boom")
    def boom():
        raise RuntimeError("app bug")

    options.setdefault("sender", lambda topic, event, key=None: sent.append((topic, event, key)))
    instrument_flask(app, service="flask-svc", **options)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app.test_client()


def test_event_for_a_known_request():
    sent: list = []
    response = _client(sent).get(
        "/users/5?page=1", buffered=True, headers={"x-user-id": "u9", "authorization": "Bearer secret"}
    )
    assert response.json == {"id": 5}
    [(topic, event, key)] = sent
    jsonschema.validate(event, SCHEMA)
    assert (topic, key) == ("http_events", "u9")
    assert (event["route"], event["path"], event["status_code"]) == ("/users/{user_id}", "/users/5", 200)
    assert event["response_bytes"] == len(response.data)
    assert "secret" not in json.dumps(event)


def test_streamed_body_is_counted_and_untouched():
    sent: list = []
    response = _client(sent).get("/files/a/b.txt", buffered=True)
    assert response.data == b"part-0;part-1;part-2;"
    assert sent[0][1]["route"] == "/files/{name}" and sent[0][1]["response_bytes"] == 21


def test_unmatched_requests_share_one_route_value():
    sent: list = []
    client = _client(sent)
    paths = [f"/probe/{i}/wp-admin.php" for i in range(50)]
    for path in paths:
        assert client.get(path, buffered=True).status_code == 404
    assert {event["route"] for _, event, _ in sent} == {"<unmatched>"}
    assert [event["path"] for _, event, _ in sent] == paths


def test_exception_yields_a_500_event():
    sent: list = []
    response = _client(sent).get("/boom", buffered=True)
    assert response.status_code == 500
    assert (sent[0][1]["status_code"], sent[0][1]["route"]) == (500, "/boom")


def test_exception_escaping_the_app_is_recorded_and_reraised():
    sent: list = []

    def failing_app(environ, start_response):
        raise ValueError("wsgi bug")

    middleware = create_wsgi_api_event_middleware(
        failing_app, service="s", sender=lambda topic, event, key=None: sent.append(event)
    )
    with pytest.raises(ValueError, match="wsgi bug"):
        middleware({"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}, lambda *a: None)
    assert sent[0]["status_code"] == 500


def test_a_failing_producer_never_breaks_a_request():
    def broken(*args, **kwargs):
        raise RuntimeError("no kafka")

    response = _client([], sender=broken).get("/users/1", buffered=True)
    assert response.status_code == 200 and response.json == {"id": 1}
