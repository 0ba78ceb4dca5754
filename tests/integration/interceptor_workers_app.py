"""Served by test_interceptor_workers.py with several worker processes on one spool directory (ITEST_SPOOL):
`uvicorn --workers 4 --factory ...:asgi_app` (FastAPI) and `gunicorn -w 4 --preload '...:wsgi_app()'` (Flask).
Each answer tells which worker answered and how its producer routes events; `/_state` answers the same without
making an event."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from interceptor import ApiEventMiddleware, configure_producer, instrument_flask, kafka_lifespan, send_message_to_kafka
from interceptor import producer as producer_module

CONFIG = {"bootstrap.servers": os.environ["ITEST_BOOTSTRAP"], "reconnect.backoff.max.ms": 500}
SPOOL = os.environ["ITEST_SPOOL"]
TOPIC = os.environ["ITEST_TOPIC"]
SERVICE = "itest-workers"
# the interceptor's own log lines (spooling, replays, hand-offs) go to the server's log, which the test keeps
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(threadName)s %(name)s %(message)s")


def worker_state() -> dict[str, Any]:
    producer = producer_module.get_producer()
    stats = producer.stats()
    return {
        "pid": os.getpid(),
        "spooled": stats.get("spooled", 0),
        "produced": stats.get("produced", 0),
        "replayed": stats.get("replayed", 0),
        "dropped": stats.get("dropped", 0),
        "broker_down": stats["broker_down"],
        "holding": int(producer.spool is not None and producer.spool.holding),
        "inherited": len(producer_module._inherited),  # 1 in a worker forked from a master with a producer
        "threads": sorted(t.name for t in threading.enumerate() if t.name.startswith("kafka-")),
    }


def asgi_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI(lifespan=kafka_lifespan(CONFIG, spool_dir=SPOOL))

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, **worker_state()}

    @app.get("/_state")
    async def state() -> dict[str, Any]:
        return worker_state()

    app.add_middleware(ApiEventMiddleware, service=SERVICE, topic=TOPIC, exclude_paths=["/_state"])
    return app


def wsgi_app() -> Any:
    """With --preload this runs in gunicorn's master: the start-up event makes the producer exist before the fork."""
    from flask import Flask

    configure_producer(CONFIG, spool_dir=SPOOL)
    send_message_to_kafka(TOPIC, {"event_id": f"startup-{os.getpid()}", "trace_id": None})
    app = Flask(__name__)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, **worker_state()}

    @app.get("/_state")
    def state() -> dict[str, Any]:
        return worker_state()

    instrument_flask(app, service=SERVICE, topic=TOPIC, exclude_paths=["/_state"])
    return app
