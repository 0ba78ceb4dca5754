"""Pure ASGI middleware: every HTTP request becomes one event on Kafka.

    app = create_api_event_middleware(app, service="shop")          # any ASGI app
    app.add_middleware(ApiEventMiddleware, service="shop")          # FastAPI / Starlette

The response is observed by wrapping `send` (status from `http.response.start`, sizes summed over the body
messages); it is never buffered or changed. The event is queued after the last body message, so the request
never waits for Kafka, and a failure of the observer never reaches the application.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from interceptor.events import RequestFacts, build_event, trace_id_from
from interceptor.producer import send_message_to_kafka

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Sender = Callable[..., Any]
UserIdGetter = Callable[[Scope], str | None]

log = logging.getLogger("interceptor")

_WANTED = {b"user-agent", b"referer", b"traceparent", b"x-request-id", b"content-length"}


class ApiEventMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        topic: str = "http_events",
        user_id_header: str | None = "x-user-id",
        user_id_getter: UserIdGetter | None = None,
        anonymise_client: bool = False,
        exclude_paths: frozenset[str] | set[str] = frozenset(),
        sender: Sender = send_message_to_kafka,
    ) -> None:
        self.app = app
        self.service = service
        self.topic = topic
        self.user_id_header = user_id_header.lower().encode() if user_id_header else None
        self.user_id_getter = user_id_getter
        self.anonymise_client = anonymise_client
        self.exclude_paths = frozenset(exclude_paths)
        self.sender = sender
        self.errors = 0  # observer failures (counted, logged, never raised)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exclude_paths:
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
                log.exception("could not record the request event")

    def _emit(self, scope: Scope, started_at: float, duration_ms: float, status: int, response_bytes: int) -> None:
        headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers", ()):
            if name in _WANTED or name == self.user_id_header:
                headers[name] = value
        user_id = self._user_id(scope, headers)
        client = scope.get("client")
        content_length = headers.get(b"content-length")
        route = scope.get("route")
        facts = RequestFacts(
            started_at=started_at,
            duration_ms=duration_ms,
            method=scope["method"],
            path=scope.get("root_path", "") + scope["path"],
            route=getattr(route, "path", None),
            status_code=status,
            user_id=user_id,
            client_address=client[0] if client else None,
            user_agent=_text(headers.get(b"user-agent")),
            referer=_text(headers.get(b"referer")),
            trace_id=trace_id_from(_text(headers.get(b"traceparent")), _text(headers.get(b"x-request-id"))),
            request_bytes=int(content_length) if content_length and content_length.isdigit() else None,
            response_bytes=response_bytes,
        )
        event = build_event(facts, service=self.service, anonymise_client=self.anonymise_client)
        self.sender(self.topic, event, key=user_id or facts.client_address)

    def _user_id(self, scope: Scope, headers: dict[bytes, bytes]) -> str | None:
        if self.user_id_getter is not None:
            return self.user_id_getter(scope)
        if self.user_id_header is not None:
            return _text(headers.get(self.user_id_header))
        return None


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1")[:512] if value is not None else None


def create_api_event_middleware(app: ASGIApp, **options: Any) -> ApiEventMiddleware:
    """Wrap an ASGI app so that each HTTP request becomes an event (see ApiEventMiddleware for options)."""
    return ApiEventMiddleware(app, **options)
