"""The event of one HTTP request, shared by the ASGI middleware and its WSGI twin.

Contract (`http_event.schema.json` beside this file, the one definition of the fields): event_id, event_time
(RFC 3339 UTC, milliseconds), service, method, route, path, status_code, duration_ms, user_id, plus optional
sizes, client address, user agent, referer and trace id.

Privacy: an event never carries a request or response body, nor a query string, and no header except the few
named above. Headers and query parameters are copied only when asked for (`capture_headers`,
`capture_query_params`), and even then never one whose name is on a deny-list: Authorization, Cookie,
Set-Cookie, API keys, tokens, secrets, passwords, sessions (`DEFAULT_DENY_*`, extended by `deny_headers`,
`deny_query_params`). The referer loses its query string.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from importlib.resources import files
from random import getrandbits
from typing import Any
from urllib.parse import parse_qsl

from interceptor.producer import send_message_to_kafka

SCHEMA_VERSION = 1
# the route of a request no route matched (a 404, a scanner's probe): one value, so unmatched paths never become
# keys of the per-route tables and windows; the path stays in the event
UNMATCHED_ROUTE = "<unmatched>"

DEFAULT_DENY_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key", "x-auth-token",
     "x-csrf-token", "x-xsrf-token", "x-amz-security-token"}
)  # fmt: skip
# any header or parameter whose name contains one of these is denied as well
DEFAULT_DENY_PATTERN = re.compile(
    r"auth|token|secret|passw|pwd|session|cookie|api[-_]?key|apikey|credential|signature|^sig$|^key$|^code$", re.I
)

Sender = Callable[..., Any]


# the formatted second of the last event (most events of a second share it) and ".000Z" ... ".999Z"
_second_cache: tuple[int, str] = (-1, "")
_MILLIS = tuple(f".{i:03d}Z" for i in range(1000))


@cache
def event_schema() -> dict[str, Any]:
    """The JSON Schema of an event (`http_event.schema.json`, shipped with the package)."""
    loaded: dict[str, Any] = json.loads(files("interceptor").joinpath("http_event.schema.json").read_text())
    return loaded


def rfc3339_millis(epoch_seconds: float) -> str:
    """`2026-11-25T10:40:00.123Z`. Most requests of a second share its prefix: it is formatted once."""
    whole = int(epoch_seconds)
    # as datetime does: microseconds first (rounded half to even), then truncated to milliseconds
    micros = round((epoch_seconds - whole) * 1_000_000)
    cached = _second_cache  # one read: another thread may replace it meanwhile
    if whole == cached[0] and micros < 1_000_000:
        return cached[1] + _MILLIS[micros // 1000]
    return _rfc3339_millis_slow(whole, micros)


def _rfc3339_millis_slow(whole: int, micros: int) -> str:
    global _second_cache
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    prefix = datetime.fromtimestamp(whole, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    _second_cache = (whole, prefix)
    return prefix + _MILLIS[micros // 1000]


def anonymise_address(address: str | None) -> str | None:
    """Zero the host part: the last octet of IPv4, the last 80 bits of IPv6."""
    if not address:
        return address
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def strip_query(url: str | None) -> str | None:
    if url is None:
        return None
    return url.split("?", 1)[0].split("#", 1)[0]


def trace_id_from(traceparent: str | None, request_id: str | None) -> str | None:
    """W3C traceparent `00-<trace id>-<span id>-<flags>`, else X-Request-ID."""
    if traceparent:
        parts = traceparent.split("-")
        if len(parts) == 4 and len(parts[1]) == 32:
            return parts[1]
    return request_id[:128] if request_id else None


@dataclass(frozen=True)
class EventOptions:
    """What both middlewares are configured with (keyword arguments of `create_*_middleware`)."""

    service: str
    topic: str = "http_events"
    user_id_header: str | None = "x-user-id"
    anonymise_client: bool = False
    exclude_paths: frozenset[str] = frozenset()
    unmatched_route: str = UNMATCHED_ROUTE
    capture_headers: frozenset[str] = frozenset()
    capture_query_params: frozenset[str] = frozenset()
    deny_headers: frozenset[str] = frozenset()
    deny_query_params: frozenset[str] = frozenset()
    sender: Sender = field(default=send_message_to_kafka)

    @classmethod
    def build(cls, **options: Any) -> EventOptions:
        lowered = {"capture_headers", "deny_headers", "capture_query_params", "deny_query_params", "exclude_paths"}
        for name in lowered & options.keys():
            values: Iterable[str] = options[name] or ()
            options[name] = frozenset(v if name == "exclude_paths" else v.lower() for v in values)
        if options.get("user_id_header"):
            options["user_id_header"] = options["user_id_header"].lower()
        return cls(**options)

    def header_allowed(self, name: str) -> bool:
        return (
            name not in DEFAULT_DENY_HEADERS and name not in self.deny_headers and not DEFAULT_DENY_PATTERN.search(name)
        )

    def query_param_allowed(self, name: str) -> bool:
        return name.lower() not in self.deny_query_params and not DEFAULT_DENY_PATTERN.search(name)

    def wanted_headers(self) -> frozenset[str]:
        """Header names (lower case) a middleware must read; nothing else is looked at."""
        names = {"user-agent", "referer", "traceparent", "x-request-id", "content-length"}
        names |= {h for h in self.capture_headers if self.header_allowed(h)}
        if self.user_id_header:
            names.add(self.user_id_header)
        return frozenset(names)


@dataclass(slots=True)
class RequestFacts:
    """What a middleware observed of one request/response."""

    started_at: float  # epoch seconds at the server when the request arrived
    duration_ms: float
    method: str
    path: str
    query_string: str
    route: str | None
    status_code: int
    headers: Mapping[str, str]  # only the names of `EventOptions.wanted_headers()`, lower case
    user_id: str | None
    client_address: str | None
    response_bytes: int


def build_event(facts: RequestFacts, options: EventOptions) -> dict[str, Any]:
    """The event of one request."""
    return new_event(
        options, facts.started_at, round(facts.duration_ms, 3), facts.method, facts.path, facts.query_string,
        facts.route, facts.status_code, facts.headers, facts.user_id, facts.client_address, facts.response_bytes,
    )  # fmt: skip


def new_event(
    options: EventOptions,
    started_at: float,
    duration_ms: float,
    method: str,
    path: str,
    query_string: str,
    route: str | None,
    status_code: int,
    headers: Mapping[str, str] | None,
    user_id: str | None,
    client_address: str | None,
    response_bytes: int,
) -> dict[str, Any]:
    """The event of one request, from what a middleware observed: `RequestFacts`' fields, positional (no object is
    made for them), `duration_ms` already rounded to the microsecond. On every request's path: written for speed
    (no helper calls for absent headers, optional fields added only when known, so events stay small)."""
    event: dict[str, Any] = {
        # 128 random bits, as unique as a UUID4 at a tenth of its cost; `random` reseeds itself from the OS in a
        # forked worker (uvicorn/gunicorn), so processes never share a sequence
        "event_id": getrandbits(128).to_bytes(16, "big").hex(),
        "event_time": rfc3339_millis(started_at),
        "service": options.service,
        "method": method,
        "route": route or options.unmatched_route,
        "path": path,
        "status_code": status_code,
        "duration_ms": duration_ms,
        "user_id": user_id,
        "response_bytes": response_bytes,
        "schema_version": SCHEMA_VERSION,
    }
    if client_address:
        if options.anonymise_client:
            client_address = anonymise_address(client_address)
        if client_address:
            event["client_address"] = client_address
    if headers:
        value = headers.get("user-agent")
        if value is not None:
            event["user_agent"] = value
        value = headers.get("referer")
        if value is not None:
            event["referer"] = strip_query(value)
        if "traceparent" in headers or "x-request-id" in headers:
            trace_id = trace_id_from(headers.get("traceparent"), headers.get("x-request-id"))
            if trace_id is not None:
                event["trace_id"] = trace_id
        value = headers.get("content-length")
        if value is not None and value.isdigit():
            event["request_bytes"] = int(value)
        if options.capture_headers:
            captured = {h: headers[h] for h in options.capture_headers if h in headers and options.header_allowed(h)}
            if captured:
                event["headers"] = captured
    if options.capture_query_params and query_string:
        query = {
            k: v
            for k, v in parse_qsl(query_string, keep_blank_values=True)
            if k.lower() in options.capture_query_params and options.query_param_allowed(k)
        }
        if query:
            event["query"] = query
    return event


def emit(facts: RequestFacts, options: EventOptions) -> None:
    event = build_event(facts, options)
    # the key is the event's own (possibly anonymised) client address: never the raw one
    options.sender(options.topic, event, key=facts.user_id or event.get("client_address"))
