"""Pure ASGI middleware: every HTTP request becomes one event on Kafka.

    app = create_api_event_middleware(app, service="shop")          # any ASGI app
    app.add_middleware(ApiEventMiddleware, service="shop")          # FastAPI / Starlette

The response is observed by wrapping `send` (status from `http.response.start`, sizes summed over the body
messages); it is never buffered or changed. The event is queued after the last body message, so the request
never waits for Kafka, and a failure of the observer never reaches the application. Options: see
`interceptor.events.EventOptions` (plus `user_id_getter(scope)`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from interceptor.events import EventOptions, RequestFacts, emit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
# loose on purpose: each framework spells the ASGI types its own way (Starlette's add_middleware checks them)
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
UserIdGetter = Callable[[Scope], str | None]

log = logging.getLogger("interceptor")


class ApiEventMiddleware:
    def __init__(self, app: ASGIApp, /, *, user_id_getter: UserIdGetter | None = None, **options: Any) -> None:
        self.app = app
        self.options = EventOptions.build(**options)
        self.user_id_getter = user_id_getter
        self._wanted = {name.encode("latin-1") for name in self.options.wanted_headers()}
        self.errors = 0  # observer failures: counted and logged, never raised

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.options.exclude_paths:
            await self.app(scope, receive, send)
            return

        started_at = time.time()
        t0 = time.perf_counter()
        status_code = 500  # if the app fails before starting a response, the server answers 500
        response_bytes = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code, response_bytes
            if message["type"] == "http.response.start":
                status_code = int(message["status"])
            elif message["type"] == "http.response.body":
                response_bytes += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            duration_ms = (time.perf_counter() - t0) * 1000.0
            try:
                self._emit(scope, started_at, duration_ms, status_code, response_bytes)
            except Exception:
                self.errors += 1
                log.exception("could not record the request event (errors=%d)", self.errors)

    def _emit(self, scope: Scope, started_at: float, duration_ms: float, status: int, response_bytes: int) -> None:
        headers = {
            name.decode("latin-1"): value.decode("latin-1")[:512]
            for name, value in scope.get("headers", ())
            if name in self._wanted
        }
        if self.user_id_getter is not None:
            user_id = self.user_id_getter(scope)
        else:
            user_id = headers.get(self.options.user_id_header or "")
        client = scope.get("client")
        route = scope.get("route")  # set by the router of Starlette / FastAPI while the app ran
        facts = RequestFacts(
            started_at=started_at,
            duration_ms=duration_ms,
            method=scope["method"],
            path=scope.get("root_path", "") + scope["path"],
            query_string=scope.get("query_string", b"").decode("latin-1"),
            route=getattr(route, "path_format", None) or getattr(route, "path", None),
            status_code=status,
            headers=headers,
            user_id=user_id,
            client_address=client[0] if client else None,
            response_bytes=response_bytes,
        )
        emit(facts, self.options)


def create_api_event_middleware(app: ASGIApp, **options: Any) -> ApiEventMiddleware:
    """Wrap an ASGI app so that each HTTP request becomes an event (options: `EventOptions`)."""
    return ApiEventMiddleware(app, **options)
