"""The producer's lifecycle in an ASGI app's lifespan (FastAPI, Starlette, any framework with ASGI lifespan).

    app = FastAPI(lifespan=kafka_lifespan({"bootstrap.servers": "kafka:9092"}, spool_dir="/var/spool/shop"))
    app.add_middleware(ApiEventMiddleware, service="shop")

At start-up (in each worker process, after the server forked it) the producer is configured and started, so
the connection to Kafka is made before the first request; at shutdown it is flushed (what cannot be delivered
in `flush_timeout` goes to the spool) off the event loop. An app's own lifespan runs inside it (`lifespan=`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from interceptor.producer import DEFAULT_SPOOL_MAX_BYTES, configure_producer, get_producer, shutdown_producer

AppT = TypeVar("AppT")
Lifespan = Callable[[AppT], AbstractAsyncContextManager[Any]]


def kafka_lifespan(
    config: dict[str, Any],
    *,
    spool_dir: Path | str | None = None,
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
    spool_fsync: bool = False,
    flush_timeout: float = 10.0,
    lifespan: Lifespan[AppT] | None = None,
) -> Lifespan[AppT]:
    """A lifespan for `FastAPI(lifespan=...)` / `Starlette(lifespan=...)` that configures, starts and flushes
    the process-wide producer around the app's own `lifespan` (if any); what that yields is passed on."""

    @asynccontextmanager
    async def run(app: AppT) -> AsyncIterator[Any]:
        configure_producer(config, spool_dir=spool_dir, spool_max_bytes=spool_max_bytes, spool_fsync=spool_fsync)
        get_producer()  # connect now, not on the first request
        try:
            if lifespan is None:
                yield None
            else:
                async with lifespan(app) as state:
                    yield state
        finally:
            await asyncio.get_running_loop().run_in_executor(None, shutdown_producer, flush_timeout)

    return run
