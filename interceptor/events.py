"""The event of one HTTP request, shared by the ASGI middleware and its WSGI twin.

Contract (../shared/notes/architecture.md and interceptor/http_event.schema.json): event_id, event_time
(RFC 3339 UTC, milliseconds), service, method, route, path, status_code, duration_ms, user_id, plus optional
sizes, client address, user agent, referer and trace id. Never headers such as Authorization or Cookie,
never query strings or bodies.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SCHEMA_VERSION = 1


def rfc3339_millis(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


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


@dataclass(frozen=True)
class RequestFacts:
    """What the middleware observed of one request/response."""

    started_at: float  # epoch seconds at the server when the request arrived
    duration_ms: float
    method: str
    path: str
    route: str | None
    status_code: int
    user_id: str | None
    client_address: str | None
    user_agent: str | None
    referer: str | None
    trace_id: str | None
    request_bytes: int | None
    response_bytes: int


def build_event(facts: RequestFacts, *, service: str, anonymise_client: bool = False) -> dict[str, Any]:
    client = anonymise_address(facts.client_address) if anonymise_client else facts.client_address
    return {
        "event_id": uuid.uuid4().hex,
        "event_time": rfc3339_millis(facts.started_at),
        "service": service,
        "method": facts.method,
        "route": facts.route or facts.path,
        "path": facts.path,
        "status_code": facts.status_code,
        "duration_ms": round(facts.duration_ms, 3),
        "user_id": facts.user_id,
        "client_address": client,
        "user_agent": facts.user_agent,
        "referer": strip_query(facts.referer),
        "trace_id": facts.trace_id,
        "request_bytes": facts.request_bytes,
        "response_bytes": facts.response_bytes,
        "schema_version": SCHEMA_VERSION,
    }


def trace_id_from(traceparent: str | None, request_id: str | None) -> str | None:
    """W3C traceparent `00-<trace id>-<span id>-<flags>`, else X-Request-ID."""
    if traceparent:
        parts = traceparent.split("-")
        if len(parts) == 4 and len(parts[1]) == 32:
            return parts[1]
    return request_id[:128] if request_id else None
