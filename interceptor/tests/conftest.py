"""Fixtures of the interceptor's own tests: they need the interceptor, its frameworks and pytest, nothing of the
platform (they run in a fresh virtual environment on each supported Python)."""

from __future__ import annotations

import socket
from typing import Any

import pytest


@pytest.fixture
def unreachable() -> dict[str, Any]:
    """A librdkafka configuration pointing at a port nobody listens on, with short timeouts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return {"bootstrap.servers": f"127.0.0.1:{port}", "message.timeout.ms": 1500, "reconnect.backoff.max.ms": 200}
