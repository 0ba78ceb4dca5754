"""The per-minute window with allowed lateness (flink_jobs/minute_window.py): Flink's firing rules over rows that
carry a number of requests, and the watermark each request arrived at. The DataStream tests on a mini-cluster
(tests/flink/test_datastream_windows.py) run the same rules inside the job."""

from __future__ import annotations

from flink_jobs.minute_window import MINUTE_MS, Firing, MinuteWindow, count, window_start

START = 1_764_064_800_000  # 2025-11-25T10:00:00Z, a minute boundary
LAST = START + MINUTE_MS - 1


def window() -> MinuteWindow:
    return MinuteWindow(START)


def test_a_request_belongs_to_the_minute_it_started_in() -> None:
    assert window_start(START) == START
    assert window_start(LAST) == START
    assert window_start(LAST + 1) == START + MINUTE_MS


def test_counts_ahead_of_the_watermark_wait_for_the_first_firing() -> None:
    w = window()
    assert count(w, 5, 1, None, 0) == []  # a per-second count: always ahead of the watermark
    assert count(w, 1, 0, START + 30_000, 0) == []  # behind the watermark, but the window was still open
    assert w.fire() == [Firing(START, START + MINUTE_MS, 6, 1, 0)]


def test_without_allowed_lateness_a_request_after_the_window_closed_is_late() -> None:
    w = window()
    count(w, 3, 0, None, 0)
    assert count(w, 1, 0, LAST, 0) is None  # the watermark reached the window's last millisecond: closed
    assert w.fire() == [Firing(START, START + MINUTE_MS, 3, 0, 0)]


def test_inside_the_allowed_lateness_a_late_request_fires_the_window_again() -> None:
    w = window()
    count(w, 3, 1, None, 60_000)
    assert w.fire() == [Firing(START, START + MINUTE_MS, 3, 1, 0)]
    assert count(w, 1, 1, LAST + 10_000, 60_000) == [Firing(START, START + MINUTE_MS, 4, 2, 1)]
    assert count(w, 1, 0, LAST + 20_000, 60_000) == [Firing(START, START + MINUTE_MS, 5, 2, 2)]
    assert count(w, 1, 0, LAST + 60_000, 60_000) is None  # past the lateness: purged, late


def test_a_late_request_that_arrives_before_this_operator_fired_the_window_waits_for_that_firing() -> None:
    # the job's watermark had passed the window when it arrived; this operator's (the minimum of the SQL
    # operators before it) had not: the first firing still counts what came before, then this one re-fires
    w = window()
    count(w, 3, 0, None, 60_000)
    assert count(w, 1, 0, LAST + 5_000, 60_000) == []
    assert w.fire() == [Firing(START, START + MINUTE_MS, 3, 0, 0), Firing(START, START + MINUTE_MS, 4, 0, 1)]


def test_a_window_whose_first_request_came_after_it_closed_fires_first_with_that_request() -> None:
    # Flink creates the window with its first request and fires it at once: firing 0 holds that request
    w = window()
    assert count(w, 1, 1, LAST + 5_000, 60_000) == []
    assert count(w, 1, 0, LAST + 6_000, 60_000) == []
    assert w.fire() == [Firing(START, START + MINUTE_MS, 1, 1, 0), Firing(START, START + MINUTE_MS, 2, 1, 1)]
