"""windows: the Flink SQL window aggregations, one job, one statement set (architecture: the SQL windows of
one source belong in one job).

Streaming (source `kafka`, or `file` for a bounded run on a local mini-cluster):
    sources/<kind>.sql -> http_events.sql -> late_events.sql -> windows.sql
    TUMBLE 1 min, HOP 5 min / 1 min, SESSION (gap from config), CUMULATE 1 day / 1 hour -> speed.*;
    events behind the watermark -> raw.late_events.
Kappa replay (source `iceberg`, batch mode): sources/iceberg.sql -> windows.sql, the same window SQL over
raw.http_events, and INSERT OVERWRITE replaces exactly the replayed range's day partitions of speed.*.

    python -m infra deploy windows        # streaming, on the cluster (`make up` deploys it)
    # a replay: the same entry point with a job configuration whose source is
    # {"kind": "iceberg", "replay_start_ms": ..., "replay_end_ms": ...} (tests/flink/test_windows.py)
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from flink_jobs import sql_files
from flink_jobs.environment import create_table_environment, source_params
from flink_jobs.job_config import JobConfig, from_args

if TYPE_CHECKING:
    from pyflink.table import StatementSet

# view of windows.sql -> speed table, and the column that places a row in the replayed range
SINKS: tuple[tuple[str, str], ...] = (
    ("api_requests_per_minute", "window_start"),
    ("api_traffic_sliding_5m", "window_start"),
    ("user_sessions", "session_start"),
    ("api_daily_running_totals", "window_start"),
)
# Flink 2.0 plans no SESSION window in batch mode ("Unaligned windows like session are not supported in batch
# mode yet"): a replay recomputes speed.user_sessions from this view of user_sessions_replay.sql instead
REPLAY_VIEWS = {"user_sessions": "user_sessions_replay"}
# the longest window reaching back from a row's start: a session's gap, or the 5-minute HOP
HOP_SIZE_MINUTES = 5


def sql_files_for(config: JobConfig) -> list[str]:
    if config.source.kind == "iceberg":
        return ["sources/iceberg.sql", "windows.sql", "user_sessions_replay.sql"]
    return [f"sources/{config.source.kind}.sql", "http_events.sql", "late_events.sql", "windows.sql"]


def replay_read_range(config: JobConfig) -> tuple[int, int]:
    """[from, until) of raw.http_events a replay reads: the range, widened by the longest look-back (so an event
    just before the range still joins its session, which then starts before the range and is not rewritten) and
    by the session look-ahead (so a session starting inside the range can finish)."""
    source, streaming = config.source, config.streaming
    assert source.replay_start_ms is not None and source.replay_end_ms is not None
    back_minutes = max(streaming.session_gap_minutes, HOP_SIZE_MINUTES)
    return (
        source.replay_start_ms - back_minutes * 60_000,
        source.replay_end_ms + streaming.replay_lookahead_minutes * 60_000,
    )


def build(config: JobConfig) -> StatementSet:
    replay = config.source.kind == "iceberg"
    t_env = create_table_environment(config, streaming=not replay)
    params = {
        **source_params(config),
        "job_name": config.job_name,
        "session_gap_minutes": str(config.streaming.session_gap_minutes),
    }
    if replay:
        read_from, read_until = replay_read_range(config)
        params |= {"read_from_ms": str(read_from), "read_until_ms": str(read_until)}
    statement_set = sql_files.statement_set(t_env, sql_files_for(config), params)
    catalog = config.iceberg.catalog_name
    start, end = config.source.replay_start_ms, config.source.replay_end_ms
    for view, time_column in SINKS:
        if not replay:
            statement_set.add_insert_sql(f"INSERT INTO {catalog}.speed.{view} SELECT * FROM {view}")
        else:
            statement_set.add_insert_sql(
                f"INSERT OVERWRITE {catalog}.speed.{view} SELECT * FROM {REPLAY_VIEWS.get(view, view)} "
                f"WHERE {time_column} >= TO_TIMESTAMP_LTZ({start}, 3) AND {time_column} < TO_TIMESTAMP_LTZ({end}, 3)"
            )
    return statement_set


def main(argv: list[str] | None = None) -> None:
    config = from_args(argv)
    result = build(config).execute()
    if config.source.bounded:  # a replay or a run over a file: wait for the end (a cluster stream is detached)
        result.wait()


if __name__ == "__main__":
    main(sys.argv[1:])
