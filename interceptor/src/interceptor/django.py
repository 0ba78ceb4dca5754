"""The interceptor as a Django middleware: each request becomes one event, routed by Django's URL patterns.

    # settings.py
    MIDDLEWARE = ["interceptor.django.ApiEventDjangoMiddleware", *MIDDLEWARE]  # first: it times the rest
    INTERCEPTOR = {
        "service": "shop",                      # the options of `EventOptions` (topic, capture_headers, ...)
        "producer": {"config": {"bootstrap.servers": "kafka:9092"}, "spool_dir": "/var/spool/shop"},
    }

The route is the pattern of the view Django resolved (`users/<int:user_id>` becomes `/users/{user_id}`, the
same template form as Starlette's and Flask's), `<unmatched>` when no pattern matched. The event is queued when
the response is complete: at once for an ordinary response, after the last chunk for a streaming one. Works
under WSGI and ASGI (sync and async views). The producer is configured from `INTERCEPTOR["producer"]`
(`configure_producer`'s arguments) when the first middleware is built, and flushed at the process's exit.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse

from interceptor.events import EventOptions, RequestFacts, emit
from interceptor.producer import configure_producer, producer_stats
from interceptor.wsgi import environ_keys

log = logging.getLogger("interceptor")
_CONVERTER = re.compile(r"<(?:[^>:]+:)?([A-Za-z_][A-Za-z0-9_]*)>")

GetResponse = Callable[[HttpRequest], Any]
UserIdGetter = Callable[[HttpRequest], "str | None"]


def django_route_template(route: str) -> str:
    """`users/<int:user_id>/` -> `/users/{user_id}/`: Django's pattern in Starlette's template form."""
    return "/" + _CONVERTER.sub(r"{\1}", route).lstrip("^").rstrip("$")


class ApiEventDjangoMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse, *, user_id_getter: UserIdGetter | None = None) -> None:
        self.get_response = get_response
        options: dict[str, Any] = dict(getattr(settings, "INTERCEPTOR", {}))
        producer = options.pop("producer", None)
        self.user_id_getter: UserIdGetter | None = options.pop("user_id_getter", user_id_getter)
        if producer is not None and not producer_stats():  # the first middleware built in this process
            configure_producer(**producer)
        options.setdefault("service", getattr(settings, "ROOT_URLCONF", "django").split(".", 1)[0])
        self.options = EventOptions.build(**options)
        self._wanted = environ_keys(self.options)  # request.META holds the WSGI environ's keys
        self.errors = 0
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self._acall(request)
        if request.path_info in self.options.exclude_paths:
            return self.get_response(request)
        started_at, t0 = time.time(), time.perf_counter()
        try:
            response = self.get_response(request)
        except BaseException:
            self._emit(request, started_at, t0, 500, 0)
            raise
        return self._observe(request, response, started_at, t0)

    async def _acall(self, request: HttpRequest) -> Any:
        get_response: Callable[[HttpRequest], Awaitable[Any]] = self.get_response
        if request.path_info in self.options.exclude_paths:
            return await get_response(request)
        started_at, t0 = time.time(), time.perf_counter()
        try:
            response = await get_response(request)
        except BaseException:
            self._emit(request, started_at, t0, 500, 0)
            raise
        return self._observe(request, response, started_at, t0)

    def _observe(self, request: HttpRequest, response: HttpResponseBase, started_at: float, t0: float) -> Any:
        if not isinstance(response, StreamingHttpResponse):
            self._emit(request, started_at, t0, response.status_code, len(getattr(response, "content", b"")))
            return response
        status = response.status_code
        if response.is_async:
            response.streaming_content = self._counted_async(response.streaming_content, request, started_at, t0,
                                                             status)  # fmt: skip
        else:
            response.streaming_content = self._counted(response.streaming_content, request, started_at, t0, status)
        return response

    def _counted(self, chunks: Any, request: HttpRequest, started_at: float, t0: float, status: int) -> Iterator[bytes]:
        size = 0
        try:
            for chunk in chunks:
                size += len(chunk)
                yield chunk
        finally:
            self._emit(request, started_at, t0, status, size)

    async def _counted_async(
        self, chunks: Any, request: HttpRequest, started_at: float, t0: float, status: int
    ) -> AsyncIterator[bytes]:
        size = 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                yield chunk
        finally:
            self._emit(request, started_at, t0, status, size)

    def _emit(self, request: HttpRequest, started_at: float, t0: float, status: int, size: int) -> None:
        try:
            meta = request.META
            headers = {h: str(meta[key])[:512] for key, h in self._wanted.items() if key in meta}
            match = getattr(request, "resolver_match", None)
            route = getattr(match, "route", None)
            user_id = (
                self.user_id_getter(request)
                if self.user_id_getter is not None
                else headers.get(self.options.user_id_header or "")
            )
            facts = RequestFacts(
                started_at=started_at,
                duration_ms=(time.perf_counter() - t0) * 1000.0,
                method=request.method or "GET",
                path=request.path,
                query_string=meta.get("QUERY_STRING", ""),
                route=django_route_template(route) if route else None,
                status_code=status,
                headers=headers,
                user_id=user_id,
                client_address=meta.get("REMOTE_ADDR"),
                response_bytes=size,
            )
            emit(facts, self.options)
        except Exception:
            self.errors += 1
            log.exception("could not record the request event (errors=%d)", self.errors)
