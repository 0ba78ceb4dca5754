"""Known events: each with an id of its own and a fixed shape, so what the tables hold of them can be checked
exactly (the chaos benchmark, and the stack tests through tests/integration/known_events.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def event(service: str, i: int, at: datetime | None = None) -> dict[str, object]:
    """Event `i` of `service` at `at` (default: now); every tenth a 503."""
    return {
        "event_id": f"{service}-{i}-{uuid.uuid4().hex}",
        "event_time": (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "service": service,
        "method": "GET",
        "route": "/items/{id}",
        "path": f"/items/{i}",
        "status_code": 200 if i % 10 else 503,
        "duration_ms": float(i % 50),
        "user_id": f"u{i % 13}" if i % 3 else None,
    }
