"""Run by test_interceptor_kafka.py in its own process: an app with the interceptor sending requests
non-stop while Kafka is away, appending each request's event_id to a file, until it is killed."""

from __future__ import annotations

import asyncio
import sys

import httpx
from fastapi import FastAPI

from interceptor import ApiEventMiddleware, configure_producer, send_message_to_kafka


async def main(bootstrap: str, spool_dir: str, ids_file: str, topic: str) -> None:
    configure_producer({"bootstrap.servers": bootstrap, "reconnect.backoff.max.ms": 200}, spool_dir=spool_dir)
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    out = open(ids_file, "a", buffering=1)  # noqa: SIM115 - one line per request, flushed, until killed

    def sender(topic: str, event: dict, key: str | None = None) -> None:
        send_message_to_kafka(topic, event, key=key)
        out.write(event["event_id"] + "\n")

    app.add_middleware(ApiEventMiddleware, service="sigkill-test", topic=topic, sender=sender)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        i = 0
        while True:
            await client.get(f"/items/{i}")
            i += 1
            await asyncio.sleep(0.002)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
