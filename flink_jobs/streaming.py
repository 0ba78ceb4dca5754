"""streaming: the streaming job. It reads the topic once, parses each message once, de-duplicates each event once,
and writes every table of the stream; all of its sinks commit on the same checkpoints (exactly-once through
Iceberg's Flink sink).

    sources/<kind>.sql -> http_events.sql          parse and validate           -> checked_events
      |- raw_events.sql                             malformed messages -> raw.dead_letter_events
      -> unique_events.sql                          valid events, each event_id once, each with the watermark
         |                                          it is split at, which the windows run on (kept across
         |                                          restores) -> events
         |- raw_events.sql                          -> raw.http_events (device class and bot flag: user_agent.py's
         |                                             rules as built-in REGEXPs)
         |- late_events.sql -> windows.sql          split at the watermark: behind it -> raw.late_events; ahead of
         |                                          it TUMBLE 1 min, HOP 5 min / 1 min, SESSION, CUMULATE 1 day / 1 h
         |                                          -> speed.*
         |- datastream_inputs.sql -> datastream_windows.py -> datastream_windows.sql
                                                    the per-minute window with allowed lateness and the checkout
                                                    funnel (Python) -> speed.*, raw.late_events

`checked_events` and `events` are read through a DataStream and back (`through_datastream`): the planner cannot
see past that, so everything after shares one parse and one de-duplication. Left to itself it plans each INSERT on
its own, with only the columns that INSERT reads, and copies the parsing and the de-duplication (with its state)
into each of them. The only state kept per event is the de-duplication's, for `streaming.dedup_horizon_minutes`.

Kappa replay (source `iceberg`, batch mode): sources/iceberg.sql -> windows.sql, the same window SQL over
raw.http_events (each event_id once), and INSERT OVERWRITE replaces exactly the replayed range's day partitions
of the SQL windows' speed.* tables.

    python -m infra deploy streaming             # on the cluster (`make up` deploys it)
    python -m infra replay streaming DAY         # a replay of the SQL windows, on the cluster
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from flink_jobs import JOBS, sql_files, user_agent
from flink_jobs.environment import create_table_environment, source_params, through_datastream
from flink_jobs.job_config import JobConfig, from_args

if TYPE_CHECKING:
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StatementSet

# view of windows.sql -> speed table of the same name, and the column that places a row in the replayed range
# (the registry's `replays` of this job)
SINKS: tuple[tuple[str, str], ...] = tuple(
    (identifier.removeprefix("speed."), column) for identifier, column in JOBS["streaming"].replays
)
# Flink plans no SESSION window in batch mode ("Unaligned windows like session are not supported in batch mode
# yet"): a replay recomputes speed.user_sessions from this view of user_sessions_replay.sql instead
REPLAY_VIEWS = {"user_sessions": "user_sessions_replay"}
# the statement files whose INSERTs the streaming job runs (besides one per SINKS view)
SQL_FILES = ("raw_events.sql", "late_events.sql", "windows.sql", "datastream_windows.sql")
# the longest window reaching back from a row's start: a session's gap, or the 5-minute HOP
HOP_SIZE_MINUTES = 5


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


def build_replay(config: JobConfig) -> StatementSet:
    """A Kappa replay: the SQL windows in batch mode over raw.http_events, overwriting the range's partitions."""
    t_env = create_table_environment(config, streaming=False)
    read_from, read_until = replay_read_range(config)
    params = {
        **source_params(config),
        "session_gap_minutes": str(config.streaming.session_gap_minutes),
        "read_from_ms": str(read_from),
        "read_until_ms": str(read_until),
    }
    statement_set = sql_files.statement_set(
        t_env, ["sources/iceberg.sql", "windows.sql", "user_sessions_replay.sql"], params
    )
    catalog, start, end = config.iceberg.catalog_name, config.source.replay_start_ms, config.source.replay_end_ms
    for view, time_column in SINKS:
        statement_set.add_insert_sql(
            f"INSERT OVERWRITE {catalog}.speed.{view} SELECT * FROM {REPLAY_VIEWS.get(view, view)} "
            f"WHERE {time_column} >= TO_TIMESTAMP_LTZ({start}, 3) AND {time_column} < TO_TIMESTAMP_LTZ({end}, 3)"
        )
    return statement_set


def build(config: JobConfig, env: StreamExecutionEnvironment) -> None:
    """Add the streaming job to `env`."""
    from pyflink.datastream import CheckpointingMode
    from pyflink.table import StreamTableEnvironment

    from flink_jobs import datastream_windows  # PyFlink's DataStream API: only where the job is built

    env.set_parallelism(config.parallelism)
    # an operator's output goes to the next one in its chain as it is, not copied for each of them (the table
    # runtime's operators and Iceberg's writer do not keep the objects they are given)
    env.get_config().enable_object_reuse()
    env.enable_checkpointing(config.checkpoint_interval_seconds * 1000, CheckpointingMode.EXACTLY_ONCE)
    t_env = create_table_environment(config, stream_env=env)
    assert isinstance(t_env, StreamTableEnvironment)
    streaming = config.streaming
    params = {
        **source_params(config),
        "job_name": config.job_name,
        "session_gap_minutes": str(streaming.session_gap_minutes),
        "funnel_routes": sql_files.string_list(streaming.funnel_routes),
        "device_class": user_agent.device_class_sql("user_agent_lower"),
    }
    sql_files.statement_set(t_env, [f"sources/{config.source.kind}.sql", "http_events.sql"], params)
    through_datastream(t_env, "checked_http_events", "checked_events", proc_time="proc_time")
    sql_files.statement_set(t_env, ["unique_events.sql"], params)
    # the windows run on the watermark the split judges by (unique_events.sql: kept across restores)
    through_datastream(t_env, "unique_http_events", "events", watermark="split_watermark")
    sql_files.statement_set(t_env, ["datastream_inputs.sql"], params)
    datastream_windows.add_windows(t_env, config)
    inserts = sql_files.statement_set(t_env, list(SQL_FILES), params)
    catalog = config.iceberg.catalog_name
    for view, _ in SINKS:
        inserts.add_insert_sql(f"INSERT INTO {catalog}.speed.{view} SELECT * FROM {view}")
    inserts.attach_as_datastream()


def main(argv: list[str] | None = None) -> None:
    config = from_args(argv)
    if config.source.kind == "iceberg":  # a replay: wait for its end
        build_replay(config).execute().wait()
        return
    from pyflink.datastream import StreamExecutionEnvironment

    env = StreamExecutionEnvironment.get_execution_environment()
    build(config, env)
    if config.source.bounded:  # a local run over a file: wait for it
        env.execute(config.job_name)
    else:  # on the cluster: submitted, detached
        env.execute_async(config.job_name)


if __name__ == "__main__":
    # run as a script (`flink run -py`), this file is `__main__`; the Python functions it builds must reach the
    # Python workers by reference to the importable flink_jobs modules, not pickled by value
    from flink_jobs.streaming import main as module_main

    module_main(sys.argv[1:])
