"""The streaming job's DataStream windows (flink_jobs/datastream_windows.py) on a local mini-cluster: exact rows of
the per-minute window with allowed lateness 0 and > 0 (a re-fired window is a new firing, and every reader sees
one row per window), late events past the lateness in raw.late_events, and the checkout funnel closing by count
and by timeout."""

from __future__ import annotations

from typing import Any

import pytest

from lakehouse import duckdb_views as lake_views
from lakehouse import maintenance
from lakehouse.contract import REQUESTS_PER_ROUTE_MINUTE_FIRINGS as REFIRED
from tests.flink.conftest import Lake
from tests.flink.test_windows import at, event

pytestmark = pytest.mark.slow


def shop(event_id: str, time: str, route: str, status: int, user: str) -> str:
    return event(event_id, time, route, status, user, 10)


# in arrival order; the watermark trails the newest event time by 5 s (streaming.out_of_orderness_seconds)
MESSAGES = [
    shop("f1", "10:00:00", "/cart/items", 201, "u9"),
    shop("a1", "10:00:10", "/a", 200, "u1"),
    shop("g1", "10:00:15", "/cart/items", 201, "u8"),
    shop("f2", "10:00:20", "/checkout", 200, "u9"),
    shop("f2", "10:00:20", "/checkout", 200, "u9"),  # delivered twice: one step, one request
    shop("h1", "10:00:25", "/cart/items", 201, "u7"),
    shop("h2", "10:00:26", "/payments", 402, "u7"),
    shop("h3", "10:00:27", "/checkout", 200, "u7"),  # u7's third funnel request: closed by count, abandoned
    shop("f3", "10:00:30", "/payments", 200, "u9"),  # u9's third: closed by count, completed
    shop("a2", "10:00:40", "/a", 500, "u1"),
    shop("g2", "10:00:45", "/checkout", 409, "u8"),  # u8 stops here: times out 30 min after 10:00:15
    shop("a3", "10:01:20", "/a", 200, "u1"),  # watermark 10:01:15: the 10:00 windows fire (firing 0)
    shop("lateA", "10:00:50", "/a", 200, "u1"),  # behind the watermark: late, or a re-firing with lateness
    shop("lateF", "10:00:01", "/checkout", 200, "u6"),  # late for the funnel always, for /checkout's minute too
    shop("a4", "10:02:10", "/a", 200, "u1"),  # watermark 10:02:05: past 10:01 + 60 s, the 10:00 windows are gone
    shop("lateB", "10:00:05", "/a", 200, "u1"),  # late even with 60 s of allowed lateness
]

# (window_start, route) -> [(firing, request_count, error_count), ...] with allowed lateness 0
FIRINGS_ON_TIME = {
    (at("10:00:00"), "/cart/items"): [(0, 3, 0)],
    (at("10:00:00"), "/checkout"): [(0, 3, 0)],
    (at("10:00:00"), "/payments"): [(0, 2, 0)],
    (at("10:00:00"), "/a"): [(0, 2, 1)],
    (at("10:01:00"), "/a"): [(0, 1, 0)],
    (at("10:02:00"), "/a"): [(0, 1, 0)],
}
# with 60 s of allowed lateness lateA and lateF fire their windows again
FIRINGS_LATENESS_60 = FIRINGS_ON_TIME | {
    (at("10:00:00"), "/checkout"): [(0, 3, 0), (1, 4, 0)],
    (at("10:00:00"), "/a"): [(0, 2, 1), (1, 3, 1)],
}
# (event_id, window_name) -> (window_start, window_end, watermark)
LATE_ON_TIME = {
    ("lateA", "requests_per_route_minute"): (at("10:00:00"), at("10:01:00"), at("10:01:15")),
    ("lateF", "requests_per_route_minute"): (at("10:00:00"), at("10:01:00"), at("10:01:15")),
    ("lateF", "checkout_funnel"): (at("10:00:01"), at("10:30:01"), at("10:01:15")),
    ("lateB", "requests_per_route_minute"): (at("10:00:00"), at("10:01:00"), at("10:02:05")),
}
LATE_LATENESS_60 = {
    k: v for k, v in LATE_ON_TIME.items() if k[0] != "lateA" and k != ("lateF", "requests_per_route_minute")
}
# user -> (window_start, window_end, steps, deepest_step, last_route, outcome, closed_by)
FUNNELS = {
    "u9": (at("10:00:00"), at("10:00:30"), 3, 3, "/payments", "completed", "count"),
    "u7": (at("10:00:25"), at("10:00:27"), 3, 3, "/checkout", "abandoned", "count"),
    "u8": (at("10:00:15"), at("10:30:15"), 2, 2, "/checkout", "abandoned", "timeout"),
}


def firings(lake: Lake) -> dict[tuple[Any, str], list[tuple[int, int, int]]]:
    found: dict[tuple[Any, str], list[tuple[int, int, int]]] = {}
    for r in lake.rows("speed.requests_per_route_minute_firings"):
        assert r["service"] == "shop"
        found.setdefault((r["window_start"], r["route"]), []).append(
            (r["firing"], r["request_count"], r["error_count"])
        )
    return {key: sorted(value) for key, value in found.items()}


def late(lake: Lake) -> dict[tuple[str, str], tuple[Any, Any, Any]]:
    # the DataStream windows' late events (the SQL windows report theirs as sql_windows, tests/flink/test_windows.py)
    rows = [r for r in lake.rows("raw.late_events") if r["window_name"] != "sql_windows"]
    assert all(r["job_name"] == "datastream" for r in rows)
    return {(r["event_id"], r["window_name"]): (r["window_start"], r["window_end"], r["watermark"]) for r in rows}


def run(lake: Lake, allowed_lateness_seconds: int) -> None:
    streaming = lake.settings.streaming.model_dump() | {"allowed_lateness_seconds": allowed_lateness_seconds}
    lake.run_job("streaming", MESSAGES, name="datastream", streaming=streaming)


def test_on_time_windows_late_events_and_funnels(lake: Lake) -> None:
    run(lake, allowed_lateness_seconds=0)
    assert firings(lake) == FIRINGS_ON_TIME
    assert late(lake) == LATE_ON_TIME
    funnels = {
        r["user_key"]: (r["window_start"], r["window_end"], r["steps"], r["deepest_step"], r["last_route"],
                        r["outcome"], r["closed_by"])
        for r in lake.rows("speed.checkout_funnels")
    }  # fmt: skip
    assert funnels == FUNNELS


def test_allowed_lateness_refires_and_readers_see_one_row_per_window(lake: Lake) -> None:
    run(lake, allowed_lateness_seconds=60)
    assert firings(lake) == FIRINGS_LATENESS_60
    assert late(lake) == LATE_LATENESS_60
    # the table keeps every firing (append-only); the reader view shows the latest firing of each window only
    latest = lake_rows(lake, "SELECT window_start, route, firing, request_count FROM speed.requests_per_route_minute")
    assert sorted(latest, key=str) == sorted(
        [(start, route, fired[-1][0], fired[-1][1]) for (start, route), fired in FIRINGS_LATENESS_60.items()], key=str
    )

    # maintenance rewrites the table to the latest firings: then a plain pyiceberg scan shows one row per window
    maintenance.run(lake.settings, maintenance.Options(min_files=1, include_today=True), [REFIRED])
    assert firings(lake) == {key: [fired[-1]] for key, fired in FIRINGS_LATENESS_60.items()}


def lake_rows(lake: Lake, sql: str) -> list[tuple[Any, ...]]:
    """Rows of `sql` over the lake's DuckDB views (lakehouse/duckdb_views.py), as DuckDB and dbt read the tables."""
    with lake_views.connect(lake.settings) as con:
        return [tuple(row) for row in con.sql(sql).fetchall()]
