"""The streaming job (flink_jobs/streaming.py) on a local mini-cluster, its SQL side: raw.http_events (each event_id
once, device class and bot flag), the dead letters, exact rows for every window type of windows.sql, out-of-order
events inside the bound, a late event past it, a duplicate delivery, a malformed message; and a Kappa replay of
the same events from raw.http_events gives the same rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.flink.conftest import Lake
from tests.unit.test_user_agent import CORPUS

pytestmark = pytest.mark.slow

DAY = datetime(2026, 11, 25, tzinfo=UTC)


def at(hh_mm_ss: str) -> datetime:
    h, m, s = (int(x) for x in hh_mm_ss.split(":"))
    return DAY + timedelta(hours=h, minutes=m, seconds=s)


def event(event_id: str, time: str, route: str, status: int, user: str | None, duration: float, **more: Any) -> str:
    return json.dumps({
        "event_id": event_id, "event_time": at(time).strftime("%Y-%m-%dT%H:%M:%S.000Z"), "service": "shop",
        "method": "GET", "route": route, "path": route, "status_code": status, "duration_ms": duration,
        "user_id": user, **more,
    })  # fmt: skip


# in arrival order; the watermark trails the newest event time by 5 s (streaming.out_of_orderness_seconds)
MESSAGES = [
    event("e1", "10:00:01", "/a", 200, "u1", 10),
    event("e2", "10:00:30", "/a", 500, "u1", 30),
    event("e2", "10:00:30", "/a", 500, "u1", 30),  # delivered twice: counted once
    event("e3", "10:01:10", "/a", 200, "u2", 20),  # watermark -> 10:01:05
    event("e4", "10:01:07", "/a", 200, "u2", 40),  # out of order, inside the bound: counted
    event("late1", "10:00:50", "/a", 200, "u1", 5),  # behind the watermark: raw.late_events
    "this is not an event",
    event("e5", "10:45:00", "/b", 200, "u1", 12),  # u1 again after 44 min: a new session
    event("e6", "10:45:20", "/a", 404, None, 8, client_address="10.0.0.1"),  # anonymous: keyed by address
]


# the unit tests' User-Agent corpus, two days before (outside every window and replay range above)
def corpus_event(i: int, header: str | None) -> str:
    return json.dumps({
        "event_id": f"ua{i}", "event_time": "2026-11-23T12:00:00.000Z", "service": "ua-corpus", "method": "GET",
        "route": "/", "path": "/", "status_code": 200, "duration_ms": 1.0, "user_agent": header,
    })  # fmt: skip


USER_AGENTS = [corpus_event(i, header) for i, (header, _) in enumerate(CORPUS)]

TUMBLE = {  # (window_start, route, status) -> (request_count, error_count, max_duration_ms)
    (at("10:00:00"), "/a", 200): (1, 0, 10.0),
    (at("10:00:00"), "/a", 500): (1, 1, 30.0),
    (at("10:01:00"), "/a", 200): (2, 0, 40.0),
    (at("10:45:00"), "/b", 200): (1, 0, 12.0),
    (at("10:45:00"), "/a", 404): (1, 0, 8.0),
}
SESSIONS = {  # (user_key, session_start) -> (session_end, request_count, error_count, routes)
    ("u1", at("10:00:01")): (at("10:30:30"), 2, 1, ["/a"]),
    ("u2", at("10:01:07")): (at("10:31:10"), 2, 0, ["/a"]),
    ("u1", at("10:45:00")): (at("11:15:00"), 1, 0, ["/b"]),
    ("10.0.0.1", at("10:45:20")): (at("11:15:20"), 1, 0, ["/a"]),
}


def hop_expected() -> dict[tuple[datetime, str], tuple[int, int]]:
    """5-minute windows every minute: each event is in the 5 windows starting in the 4 minutes before it."""
    counted = [("e1", "10:00:01", "/a", 0), ("e2", "10:00:30", "/a", 1), ("e3", "10:01:10", "/a", 0),
               ("e4", "10:01:07", "/a", 0), ("e5", "10:45:00", "/b", 0), ("e6", "10:45:20", "/a", 0)]  # fmt: skip
    windows: dict[tuple[datetime, str], list[int]] = {}
    for _id, time, route, error in counted:
        minute = at(time).replace(second=0)
        for back in range(5):
            counts = windows.setdefault((minute - timedelta(minutes=back), route), [0, 0])
            counts[0] += 1
            counts[1] += error
    return {key: (c[0], c[1]) for key, c in windows.items()}


def shop_rows(lake: Lake, identifier: str) -> list[dict[str, Any]]:
    """The rows of the shop's events (the User-Agent corpus has a service of its own)."""
    return [r for r in lake.rows(identifier) if r["service"] == "shop"]


def check_speed_tables(lake: Lake) -> None:
    tumble = {
        (r["window_start"], r["route"], r["status_code"]): (r["request_count"], r["error_count"], r["max_duration_ms"])
        for r in shop_rows(lake, "speed.api_requests_per_minute")
    }
    assert tumble == TUMBLE
    assert len(shop_rows(lake, "speed.api_requests_per_minute")) == len(TUMBLE)  # one row per window and key

    hop_rows = shop_rows(lake, "speed.api_traffic_sliding_5m")
    assert {(r["window_start"], r["route"]): (r["request_count"], r["error_count"]) for r in hop_rows} == hop_expected()
    assert len(hop_rows) == len(hop_expected())
    assert all(r["window_end"] - r["window_start"] == timedelta(minutes=5) for r in hop_rows)

    sessions = {
        (r["user_key"], r["session_start"]): (
            r["session_end"],
            r["request_count"],
            r["error_count"],
            sorted(r["routes"]),
        )
        for r in shop_rows(lake, "speed.user_sessions")
    }
    assert sessions == SESSIONS
    assert len(shop_rows(lake, "speed.user_sessions")) == len(SESSIONS)

    totals = sorted((r["window_end"], r["request_count"], r["error_count"], r["distinct_users"])
                    for r in shop_rows(lake, "speed.api_daily_running_totals"))  # fmt: skip
    # one row per hour step that holds events (all of them are between 10:00 and 11:00)
    assert totals == [(DAY + timedelta(hours=h), 6, 1, 2) for h in range(11, 25)]


def test_sql_windows_exact_rows_late_events_and_kappa_replay(lake: Lake) -> None:
    # the corpus first: its events are two days older, so after the shop's they would all be late
    lake.run_job("streaming", USER_AGENTS + MESSAGES, name="streaming")
    check_speed_tables(lake)

    # the SQL windows' late events (the DataStream windows report theirs too: tests/flink/test_datastream_windows.py)
    late = [r for r in lake.rows("raw.late_events") if r["window_name"] == "sql_windows"]
    assert [(r["event_id"], r["window_start"], r["window_end"], r["watermark"], r["job_name"]) for r in late] == [
        ("late1", at("10:00:00"), at("10:01:00"), at("10:01:05"), "streaming")
    ]

    # raw.http_events holds each event_id once, the late one included; the malformed message is a dead letter
    raw = {r["event_id"]: r for r in lake.rows("raw.http_events", ("event_id", "service", "device_class", "is_bot"))}
    assert sorted(i for i, r in raw.items() if r["service"] == "shop") == ["e1", "e2", "e3", "e4", "e5", "e6", "late1"]
    assert [r["error_reason"] for r in lake.rows("raw.dead_letter_events")] == ["not a JSON object"]
    # the device class (Python UDF) and the bot flag (built-in REGEXP) of every header of the unit tests' corpus
    assert [(raw[f"ua{i}"]["device_class"], raw[f"ua{i}"]["is_bot"]) for i in range(len(CORPUS))] == [
        (expected, expected == "bot") for _, expected in CORPUS
    ]

    # Kappa: a replay of the day from raw.http_events rewrites the day's partitions of speed.*: without the late
    # event, the same rows as the stream (with it, the stream's rows plus what only a recomputation can count).
    # A second row of an event_id (a delivery later than the stream's de-duplication horizon) counts once.
    table = lake.catalog().load_table("raw.http_events")
    table.delete("event_id == 'late1'")
    table.append(table.scan(row_filter="event_id == 'e1'").to_arrow())
    day_ms = int(DAY.timestamp() * 1000)
    replay = {"kind": "iceberg", "replay_start_ms": day_ms, "replay_end_ms": day_ms + 86_400_000}
    lake.run_job("streaming", [], name="replay", source=replay)
    # overwritten, not appended: still one row per window and key, sessions included (recomputed by
    # user_sessions_replay.sql: Flink 2.0 has no SESSION window in batch mode)
    check_speed_tables(lake)
    snapshots = lake.catalog().load_table("speed.api_requests_per_minute").snapshots()
    assert snapshots[-1].summary is not None and snapshots[-1].summary.operation.value == "overwrite"
