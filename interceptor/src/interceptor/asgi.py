"""Pure ASGI middleware: every HTTP request becomes one event on Kafka.

    app = create_api_event_middleware(app, service="shop")          # any ASGI app
    app.add_middleware(ApiEventMiddleware, service="shop")          # FastAPI / Starlette

The response is observed by wrapping `send` (status from `http.response.start`, sizes summed over the body
messages); it is never buffered or changed. The event is made after the last body message, so the request never
waits for Kafka, and a failure of the observer never reaches the application. Options: see
`interceptor.events.EventOptions` (plus `user_id_getter(scope)`).

With the producer as sender (the default), the events of the requests that completed in one turn of the event
loop are made and queued together at the start of its next turn (`loop.call_soon`): between the app's own frames
each event would cost twice the CPU it costs in such a batch, where the interceptor's code and data stay in the
caches. A sender of one's own (`sender=`), or a `user_id_getter`, has each event made at once, in the request's
own task, as the request completes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter_ns, time
from typing import Any

from interceptor.events import EventOptions, new_event
from interceptor.producer import send_message_to_kafka

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
# loose on purpose: each framework spells the ASGI types its own way (Starlette's add_middleware checks them)
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
UserIdGetter = Callable[[Scope], str | None]
# what `_emit` needs of one request: scope, started at (epoch s), duration (ms), status, response bytes
Observed = tuple[Scope, float, float, int, int]

log = logging.getLogger("interceptor")
_MAX_PENDING = 1024


class ApiEventMiddleware:
    def __init__(self, app: ASGIApp, /, *, user_id_getter: UserIdGetter | None = None, **options: Any) -> None:
        self.app = app
        self.options = EventOptions.build(**options)
        self.user_id_getter = user_id_getter
        self._wanted = {name.encode("latin-1") for name in self.options.wanted_headers()}
        self._user_id_header = self.options.user_id_header or ""
        self.errors = 0  # observer failures: counted and logged, never raised
        # a getter may look beyond the scope (a context variable of the request's task): it runs in that task
        self._batched = self.options.sender is send_message_to_kafka and user_id_getter is None
        self._pending: deque[Observed] = deque()
        self._flush_scheduled = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.options.exclude_paths:
            await self.app(scope, receive, send)
            return

        started_at = time()
        t0 = perf_counter_ns()
        status_code = 500  # if the app fails before starting a response, the server answers 500
        response_bytes = 0

        def send_wrapper(message: Message) -> Awaitable[None]:
            # a plain function returning `send`'s awaitable: one coroutine frame less per message
            nonlocal status_code, response_bytes
            kind = message["type"]
            if kind == "http.response.body":
                response_bytes += len(message.get("body", b""))
            elif kind == "http.response.start":
                status_code = int(message["status"])
            return send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            # milliseconds to the microsecond, as round(ms, 3) gives them (without its decimal conversion)
            duration_ms = (perf_counter_ns() - t0 + 500) // 1000 / 1000
            if self._batched:
                pending = self._pending
                pending.append((scope, started_at, duration_ms, status_code, response_bytes))
                if not self._flush_scheduled:
                    self._schedule_flush()
                elif len(pending) > _MAX_PENDING:  # a flush is overdue (its loop was closed before running it?)
                    self._flush()
            else:
                self._emit_logged(scope, started_at, duration_ms, status_code, response_bytes)

    def _schedule_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an asyncio loop (trio): at once
            self._flush()
            return
        loop.call_soon(self._flush)
        self._flush_scheduled = True

    def _flush(self) -> None:
        """Make and queue the pending events, oldest first."""
        self._flush_scheduled = False  # first: an event appended from now on schedules a flush of its own
        pending = self._pending
        emit = self._emit
        while pending:
            try:
                observed = pending.popleft()
            except IndexError:  # taken by a flush on another thread's loop meanwhile
                return
            try:
                emit(*observed)
            except Exception:
                self._failed()

    def _emit_logged(self, scope: Scope, started_at: float, duration_ms: float, status: int, size: int) -> None:
        try:
            self._emit(scope, started_at, duration_ms, status, size)
        except Exception:
            self._failed()

    def _failed(self) -> None:
        self.errors += 1
        log.exception("could not record the request event (errors=%d)", self.errors)

    def _emit(self, scope: Scope, started_at: float, duration_ms: float, status: int, response_bytes: int) -> None:
        wanted = self._wanted
        headers = {}
        for name, value in scope.get("headers", ()):
            if name in wanted:
                headers[name.decode("latin-1")] = value.decode("latin-1")[:512]
        getter = self.user_id_getter
        user_id = getter(scope) if getter is not None else headers.get(self._user_id_header)
        client = scope.get("client")
        route = scope.get("route")  # set by the router of Starlette / FastAPI while the app ran
        root_path = scope.get("root_path")
        options = self.options
        event = new_event(
            options,
            started_at,
            duration_ms,
            scope["method"],
            root_path + scope["path"] if root_path else scope["path"],
            scope.get("query_string", b"").decode("latin-1") if options.capture_query_params else "",
            getattr(route, "path_format", None) or getattr(route, "path", None),
            status,
            headers,
            user_id,
            client[0] if client else None,
            response_bytes,
        )
        # the key is the event's own (possibly anonymised) client address: never the raw one
        options.sender(options.topic, event, key=user_id or event.get("client_address"))


def create_api_event_middleware(app: ASGIApp, **options: Any) -> ApiEventMiddleware:
    """Wrap an ASGI app so that each HTTP request becomes an event (options: `EventOptions`)."""
    return ApiEventMiddleware(app, **options)
