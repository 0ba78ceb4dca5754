"""Waiting for a real service to reach a state, with the last thing seen in the failure."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float, what: str) -> T:
    """Call `check` every second until it returns something truthy (returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}; last result: {last!r}")
