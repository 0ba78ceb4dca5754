"""The demo shop answers its routes (the interceptor's sender is replaced by a list here)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from demo.app import create_app
from interceptor import ApiEventMiddleware, event_schema


def test_demo_routes_answer_and_each_request_is_one_event():
    app = create_app(service="demo-shop", topic="http_events")
    sent: list = []
    app.user_middleware[0].kwargs["sender"] = lambda topic, event, key=None: sent.append(event)
    assert app.user_middleware[0].cls is ApiEventMiddleware
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/products/7").json()["id"] == 7
        assert client.get("/products/999").status_code == 404
        assert client.post("/checkout", headers={"x-user-id": "u1"}).status_code == 409
        assert client.post("/cart/items", json={"product_id": 3}, headers={"x-user-id": "u1"}).status_code == 201
        assert client.post("/checkout", headers={"x-user-id": "u1"}).status_code == 200
        assert client.get("/errors/boom").status_code == 500
    routes = [(e["route"], e["status_code"]) for e in sent]
    assert routes == [
        ("/products/{product_id}", 200),
        ("/products/{product_id}", 404),
        ("/checkout", 409),
        ("/cart/items", 201),
        ("/checkout", 200),
        ("/errors/boom", 500),
    ]  # /healthz is excluded


def test_synthetic_events_follow_the_schema():
    import random

    import jsonschema

    from demo.traffic import synthetic_event

    schema = event_schema()
    for i in range(20):
        jsonschema.validate(synthetic_event("svc", 1_795_600_000.0 + i, random.Random(i)), schema)
