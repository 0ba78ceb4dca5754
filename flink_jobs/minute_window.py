"""The per-minute window with allowed lateness: plain Python, no Flink, so its rules are unit-tested on their own
(tests/unit/test_minute_window.py); the streaming job's DataStream part (datastream_windows.py) keeps the open
windows of a service and route in keyed state and sets their timers.

They are the rules of Flink's event-time windows with `allowed_lateness` and its event-time trigger, written
out: a window [start, start + 1 min) fires when the watermark passes its last millisecond (`firing` 0); an event
that arrives after that, while the watermark is less than `allowed_lateness` past it, is counted and fires the
window again (`firing` 1, 2, ...); a later one is late (raw.late_events) and counts nowhere.

What is new is the input: not every request, but rows that carry a number of requests. SQL counts the requests
that arrived ahead of the watermark per second (datastream_inputs.sql; such a row is always on time), and sends
each request that arrived at or behind it on its own, with the watermark it arrived at. Whether such a request is
counted in the first firing, fires the window again or is late is decided against that watermark, the job's
watermark when the request arrived, as Flink's window operator would have decided it: this operator's own
watermark may still be behind it (it is the minimum of the SQL operators before it). A request that arrived after
the window closed but before this operator fired the window waits for that firing (`queued`), so the firings are
exactly those of one event at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MINUTE_MS = 60_000


@dataclass(frozen=True)
class Firing:
    window_start_ms: int
    window_end_ms: int
    request_count: int
    error_count: int
    firing: int  # 0 when the watermark passed the window, then 1, 2, ... for each request inside the lateness


@dataclass
class MinuteWindow:
    """One window's counts: what the DataStream job keeps per open window of a service and route."""

    start_ms: int
    requests: int = 0
    errors: int = 0
    firings: int = 0  # how many were emitted
    queued: list[tuple[int, int]] = field(default_factory=list)  # (requests, errors) waiting for the first firing

    @property
    def end_ms(self) -> int:
        return self.start_ms + MINUTE_MS

    @property
    def last_ms(self) -> int:
        """The window's last millisecond: it fires when the watermark reaches it."""
        return self.end_ms - 1

    def fire(self) -> list[Firing]:
        """The first firing (the watermark passed the window), then one re-firing per queued request. A window
        whose requests all arrived after it closed fires first with the first of them (Flink creates the window
        with its first request and fires it at once)."""
        fired = [self._firing()] if self.requests else []
        for requests, errors in self.queued:
            self.requests += requests
            self.errors += errors
            fired.append(self._firing())
        self.queued = []
        return fired

    def _firing(self) -> Firing:
        self.firings += 1
        return Firing(self.start_ms, self.end_ms, self.requests, self.errors, self.firings - 1)


def window_start(event_ms: int) -> int:
    return event_ms - event_ms % MINUTE_MS


def is_late(window: MinuteWindow, watermark_ms: int, allowed_lateness_ms: int) -> bool:
    """Whether a request that arrived at `watermark_ms` is too late for the window (it is purged by then)."""
    return window.last_ms + allowed_lateness_ms <= watermark_ms


def count(
    window: MinuteWindow, requests: int, errors: int, watermark_ms: int | None, allowed_lateness_ms: int
) -> list[Firing] | None:
    """Count a row of `requests` (of which `errors` failed) that arrived at `watermark_ms` (None: ahead of the
    watermark). Returns the re-firing it causes (a list, empty when it waits for the first firing or counts in
    it), or None when it is late: not counted."""
    if watermark_ms is not None and window.last_ms <= watermark_ms:  # arrived after the window closed
        if is_late(window, watermark_ms, allowed_lateness_ms):
            return None
        if window.firings == 0:  # this operator has not fired the window yet: after that firing
            window.queued.append((requests, errors))
            return []
        window.requests += requests
        window.errors += errors
        return [window._firing()]
    window.requests += requests
    window.errors += errors
    # never after the first firing (this operator's watermark is at most the one it arrived at), unless
    # restored state says otherwise: then it is a re-firing, never a lost count
    return [window._firing()] if window.firings else []
