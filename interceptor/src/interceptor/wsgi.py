"""The WSGI twin of the ASGI middleware (Flask, any WSGI app), with the same event and options.

    instrument_flask(app, service="shop")                                           # Flask
    application = create_wsgi_api_event_middleware(wsgi_app, service="shop", route_getter=...)  # any WSGI app

The status comes from `start_response`, the size from the body iterable, which is passed through untouched;
the event is queued when the server closes the iterable (the response is complete). The route template comes
from `environ["interceptor.route"]` (`instrument_flask` sets it from Flask's URL rule) or `route_getter(environ)`.
Django has a middleware of its own: `interceptor.django`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from interceptor.events import EventOptions, new_event

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
EnvironGetter = Callable[[Environ], str | None]

log = logging.getLogger("interceptor")
_FLASK_CONVERTER = re.compile(r"<(?:[a-z_]+(?:\([^)]*\))?:)?([A-Za-z_][A-Za-z0-9_]*)>")


def flask_rule_template(rule: str) -> str:
    """`/users/<int:user_id>` -> `/users/{user_id}`, the same template form as Starlette's."""
    return _FLASK_CONVERTER.sub(r"{\1}", rule)


def environ_keys(options: EventOptions) -> dict[str, str]:
    """The WSGI environ key of each header a middleware reads (`HTTP_USER_AGENT` -> `user-agent`)."""
    return {
        ("CONTENT_LENGTH" if h == "content-length" else "HTTP_" + h.upper().replace("-", "_")): h
        for h in options.wanted_headers()
    }


def _default_route(environ: Environ) -> str | None:
    route = environ.get("interceptor.route")
    return str(route) if route else None


class ApiEventWSGIMiddleware:
    def __init__(
        self,
        app: WSGIApp,
        *,
        user_id_getter: EnvironGetter | None = None,
        route_getter: EnvironGetter = _default_route,
        **options: Any,
    ) -> None:
        self.app = app
        self.options = EventOptions.build(**options)
        self.user_id_getter = user_id_getter
        self.route_getter = route_getter
        self._wanted = environ_keys(self.options)
        self.errors = 0

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") in self.options.exclude_paths:
            return self.app(environ, start_response)
        started_at = time.time()
        t0 = time.perf_counter()
        state = {"status": 500}

        def observing_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            state["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        try:
            body = self.app(environ, observing_start_response)
        except BaseException:
            self._emit(environ, started_at, t0, 500, 0)
            raise
        return _ObservedBody(body, lambda size: self._emit(environ, started_at, t0, state["status"], size))

    def _emit(self, environ: Environ, started_at: float, t0: float, status: int, size: int) -> None:
        try:
            headers = {h: str(environ[key])[:512] for key, h in self._wanted.items() if key in environ}
            user_id = (
                self.user_id_getter(environ)
                if self.user_id_getter is not None
                else headers.get(self.options.user_id_header or "")
            )
            options = self.options
            event = new_event(
                options,
                started_at,
                round((time.perf_counter() - t0) * 1000.0, 3),
                environ.get("REQUEST_METHOD", "GET"),
                environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
                environ.get("QUERY_STRING", ""),
                self.route_getter(environ),
                status,
                headers,
                user_id,
                environ.get("REMOTE_ADDR"),
                size,
            )
            # the key is the event's own (possibly anonymised) client address: never the raw one
            options.sender(options.topic, event, key=user_id or event.get("client_address"))
        except Exception:
            self.errors += 1
            log.exception("could not record the request event (errors=%d)", self.errors)


class _ObservedBody:
    """Passes the body through, counting bytes; reports once when the server closes it."""

    def __init__(self, body: Iterable[bytes], on_close: Callable[[int], None]) -> None:
        self._body = body
        self._on_close = on_close
        self._size = 0
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            self._size += len(chunk)
            yield chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close(self._size)


def create_wsgi_api_event_middleware(app: WSGIApp, **options: Any) -> ApiEventWSGIMiddleware:
    """Wrap a WSGI app so that each HTTP request becomes an event (options: `EventOptions`)."""
    return ApiEventWSGIMiddleware(app, **options)


def instrument_flask(app: Any, **options: Any) -> ApiEventWSGIMiddleware:
    """Wrap a Flask app's `wsgi_app` and record each request's URL rule as its route template."""
    from flask import request

    @app.before_request
    def _record_route() -> None:
        if request.url_rule is not None:
            request.environ["interceptor.route"] = flask_rule_template(request.url_rule.rule)

    middleware = ApiEventWSGIMiddleware(app.wsgi_app, **options)
    app.wsgi_app = middleware
    return middleware
