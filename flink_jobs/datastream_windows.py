"""datastream_windows: the windows Flink SQL cannot say, in PyFlink's DataStream API, one job.

    sources/<kind>.sql -> http_events.sql (unique_http_events: valid, each event_id once)
      -> DataStream, event time and watermarks carried over from the SQL source
         |- key (service, route) -> 1-minute event-time window, allowed lateness (streaming.allowed_lateness_seconds)
         |     -> speed.requests_per_route_minute_firings, one row per firing (append-only, `firing` 0, 1, ...)
         |     -> late side output (later than watermark + allowed lateness) -> raw.late_events
         |- funnel routes, key (service, user_key) -> count window with timeout (checkout_funnel.py)
               -> speed.checkout_funnels; a funnel request behind the watermark -> raw.late_events
      -> back to tables -> sql/datastream_windows.sql (the INSERTs into Iceberg's Flink sink)

A re-fired window is a new row with the next `firing`; readers take the latest firing of each window through
one view (speed.requests_per_route_minute, infra/lake.py) and table maintenance collapses older firings, so no
reader ever sees two rows for one window, and no reader needs Iceberg equality deletes (which pyiceberg 0.12
cannot read). Every operator has a fixed uid, so a savepoint taken before a code change restores after it.

    python -m infra deploy datastream_windows      # streaming, on the cluster (`make up` deploys it)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

from pyflink.common import Row, Types
from pyflink.common.time import Time
from pyflink.datastream import CheckpointingMode, DataStream, OutputTag, StreamExecutionEnvironment
from pyflink.datastream.functions import (
    AggregateFunction,
    KeyedProcessFunction,
    ProcessFunction,
    ProcessWindowFunction,
)
from pyflink.datastream.state import ValueStateDescriptor
from pyflink.datastream.window import TumblingEventTimeWindows
from pyflink.table import StreamTableEnvironment

from flink_jobs import sql_files
from flink_jobs.checkout_funnel import ClosedFunnel, Funnel, FunnelStep
from flink_jobs.environment import create_table_environment, source_params
from flink_jobs.job_config import JobConfig, from_args

MINUTE_MS = 60_000
MINUTE_WINDOW = "requests_per_route_minute"
FUNNEL_WINDOW = "checkout_funnel"
KEY = Types.TUPLE([Types.STRING(), Types.STRING()])
_s, _i, _j = Types.STRING(), Types.INT(), Types.LONG()
EVENT = Types.ROW_NAMED(
    ["event_id", "event_ms", "service", "route", "status_code", "user_id", "user_key", "kafka_partition",
     "kafka_offset"],
    [_s, _j, _s, _s, _i, _s, _s, _i, _j],
)  # fmt: skip
FIRING = Types.ROW_NAMED(
    ["window_start_ms", "window_end_ms", "service", "route", "request_count", "error_count", "firing",
     "fired_at_ms", "watermark_ms"],
    [_j, _j, _s, _s, _j, _j, _i, _j, _j],
)  # fmt: skip
FUNNEL = Types.ROW_NAMED(
    ["window_start_ms", "window_end_ms", "service", "user_key", "steps", "deepest_step", "last_route", "outcome",
     "closed_by"],
    [_j, _j, _s, _s, _i, _i, _s, _s, _s],
)  # fmt: skip
LATE = Types.ROW_NAMED(
    ["event_id", "event_ms", "service", "route", "status_code", "user_id", "window_name", "window_start_ms",
     "window_end_ms", "watermark_ms", "kafka_partition", "kafka_offset"],
    [_s, _j, _s, _s, _i, _s, _s, _j, _j, _j, _i, _j],
)  # fmt: skip


def to_event(row: Row) -> Row:
    """A row of unique_http_events (its event time an Instant) as an EVENT."""
    return Row(
        row.event_id, row.event_time.to_epoch_milli(), row.service, row.route, row.status_code, row.user_id,
        row.user_key, row.kafka_partition, row.kafka_offset,
    )  # fmt: skip


def late_row(event: Row, window_name: str, window_start_ms: int, window_end_ms: int, watermark_ms: int) -> Row:
    return Row(
        event.event_id, event.event_ms, event.service, event.route, event.status_code, event.user_id,
        window_name, window_start_ms, window_end_ms, watermark_ms, event.kafka_partition, event.kafka_offset,
    )  # fmt: skip


# ---- requests per service and route per minute, with allowed lateness ----


class CountRequests(AggregateFunction):
    """[requests, errors] of a window, updated per event (the window keeps the counts, not the events)."""

    def create_accumulator(self) -> list[int]:
        return [0, 0]

    def add(self, value: Row, accumulator: list[int]) -> list[int]:
        accumulator[0] += 1
        accumulator[1] += int(value.status_code >= 500)
        return accumulator

    def get_result(self, accumulator: list[int]) -> list[int]:
        return accumulator

    def merge(self, a: list[int], b: list[int]) -> list[int]:
        return [a[0] + b[0], a[1] + b[1]]


class NumberFirings(ProcessWindowFunction):
    """Emit a window's counts with its firing number (0 when the watermark passes the window's end, then 1, 2, ...
    for each late event inside the allowed lateness), kept in per-window state until the window is purged."""

    def open(self, runtime_context: Any) -> None:
        self.firings = ValueStateDescriptor("firings", Types.INT())

    def process(self, key: tuple[str, str], context: Any, elements: Any) -> Iterator[Row]:
        requests, errors = next(iter(elements))
        state = context.window_state().get_state(self.firings)
        firing = state.value() or 0
        state.update(firing + 1)
        window = context.window()
        yield Row(
            window.start, window.end, key[0], key[1], requests, errors, firing, int(time.time() * 1000),
            context.current_watermark(),
        )  # fmt: skip

    def clear(self, context: Any) -> None:
        context.window_state().get_state(self.firings).clear()


class LateForMinute(ProcessFunction):
    """An event the minute window dropped (behind watermark + allowed lateness), as a raw.late_events row."""

    def process_element(self, value: Row, ctx: Any) -> Iterator[Row]:
        start = value.event_ms - value.event_ms % MINUTE_MS
        yield late_row(value, MINUTE_WINDOW, start, start + MINUTE_MS, ctx.timer_service().current_watermark())


def requests_per_route_minute(events: DataStream, allowed_lateness_ms: int) -> tuple[DataStream, DataStream]:
    """(firings, late events) of the 1-minute window per service and route."""
    # a pickled tag: a typed one carries Java objects of its field types into the pickled window operator
    late_tag = OutputTag("late-for-minute")
    firings = (
        events.key_by(lambda e: (e.service, e.route), key_type=KEY)
        .window(TumblingEventTimeWindows.of(Time.minutes(1)))
        .allowed_lateness(allowed_lateness_ms)
        .side_output_late_data(late_tag)
        .aggregate(
            CountRequests(),
            window_function=NumberFirings(),
            accumulator_type=Types.PICKLED_BYTE_ARRAY(),
            output_type=FIRING,
        )
        .name(MINUTE_WINDOW)
        .uid(f"{MINUTE_WINDOW}-window")
    )
    late = (
        firings.get_side_output(late_tag)
        .process(LateForMinute(), output_type=LATE)
        .name(f"{MINUTE_WINDOW}-late")
        .uid(f"{MINUTE_WINDOW}-late")
    )
    return firings, late


# ---- the checkout funnel: a count window with a timeout ----

LATE_FOR_FUNNEL = OutputTag("late-for-funnel", LATE)


def funnel_row(key: tuple[str, str], closed: ClosedFunnel) -> Row:
    return Row(
        closed.window_start_ms, closed.window_end_ms, key[0], key[1], closed.steps, closed.deepest_step,
        closed.last_route, closed.outcome, closed.closed_by,
    )  # fmt: skip


class CountWindowWithTimeout(KeyedProcessFunction):
    """A user's open funnel (its steps) in keyed state and an event-time timer at its deadline
    (checkout_funnel.py holds the rules)."""

    def __init__(self, routes: tuple[str, ...], timeout_ms: int) -> None:
        self.routes = routes
        self.timeout_ms = timeout_ms

    def open(self, runtime_context: Any) -> None:
        self.steps = runtime_context.get_state(ValueStateDescriptor("funnel-steps", Types.PICKLED_BYTE_ARRAY()))

    def _funnel(self) -> Funnel:
        return Funnel(self.routes, self.timeout_ms, list(self.steps.value() or []))

    def process_element(self, value: Row, ctx: Any) -> Iterator[Any]:
        timers = ctx.timer_service()
        watermark = timers.current_watermark()
        if value.event_ms <= watermark:  # its funnel may have timed out already: not counted, kept aside
            window_end = value.event_ms + self.timeout_ms
            yield LATE_FOR_FUNNEL, late_row(value, FUNNEL_WINDOW, value.event_ms, window_end, watermark)
            return
        funnel = self._funnel()
        deadline = funnel.deadline_ms if funnel.is_open else None
        closed = funnel.add(FunnelStep(value.event_id, value.event_ms, value.route, value.status_code))
        new_deadline = funnel.deadline_ms if funnel.is_open else None
        if deadline is not None and deadline != new_deadline:
            timers.delete_event_time_timer(deadline)
        if new_deadline is not None and new_deadline != deadline:
            timers.register_event_time_timer(new_deadline)
        if funnel.is_open:
            self.steps.update(funnel.steps)
        else:
            self.steps.clear()
        if closed is not None:
            yield funnel_row(ctx.get_current_key(), closed)

    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Row]:
        funnel = self._funnel()
        if not funnel.is_open or funnel.deadline_ms != timestamp:
            return
        self.steps.clear()
        yield funnel_row(ctx.get_current_key(), funnel.time_out())


def checkout_funnels(events: DataStream, routes: tuple[str, ...], timeout_ms: int) -> tuple[DataStream, DataStream]:
    """(closed funnels, late funnel requests) per service and user."""
    funnels = (
        events.filter(lambda e: e.route in routes)
        .name("funnel-routes")
        .uid("funnel-routes")
        .key_by(lambda e: (e.service, e.user_key), key_type=KEY)
        .process(CountWindowWithTimeout(routes, timeout_ms), output_type=FUNNEL)
        .name(FUNNEL_WINDOW)
        .uid(f"{FUNNEL_WINDOW}-window")
    )
    return funnels, funnels.get_side_output(LATE_FOR_FUNNEL)


# ---- the job ----


def build(config: JobConfig, env: StreamExecutionEnvironment) -> None:
    """Add the job to `env`: SQL source and parsing, the DataStream windows, SQL sinks."""
    env.set_parallelism(config.parallelism)
    env.enable_checkpointing(config.checkpoint_interval_seconds * 1000, CheckpointingMode.EXACTLY_ONCE)
    t_env = create_table_environment(config, stream_env=env)
    assert isinstance(t_env, StreamTableEnvironment)
    # the de-duplication by event_id remembers each id this long
    t_env.get_config().set("table.exec.state.ttl", f"{config.streaming.dedup_ttl_hours}h")
    if config.source.kind == "file":
        # a Python operator holds a watermark back until its bundle of elements is done, so an element that
        # arrived after the watermark would be processed before it: over a file, one element per bundle keeps
        # lateness exact and repeatable (on the cluster it is judged up to one bundle late, README)
        t_env.get_config().set("python.fn-execution.bundle.size", "1")
    params = source_params(config)
    sql_files.statement_set(t_env, [f"sources/{config.source.kind}.sql", "http_events.sql"], params)

    unique = t_env.sql_query(
        "SELECT event_id, event_time, service, route, status_code, user_id, user_key, kafka_partition, kafka_offset "
        "FROM unique_http_events"
    )
    # inserts only (the de-duplication keeps first rows); each row keeps its event time, watermarks follow
    events = t_env.to_changelog_stream(unique).map(to_event, output_type=EVENT).name("events").uid("events")
    streaming = config.streaming
    firings, late_minute = requests_per_route_minute(events, streaming.allowed_lateness_seconds * 1000)
    funnels, late_funnel = checkout_funnels(
        events, tuple(streaming.funnel_routes), streaming.funnel_timeout_minutes * MINUTE_MS
    )
    t_env.create_temporary_view("minute_firings", t_env.from_data_stream(firings))
    t_env.create_temporary_view("closed_funnels", t_env.from_data_stream(funnels))
    t_env.create_temporary_view("late_window_events", t_env.from_data_stream(late_minute.union(late_funnel)))
    inserts = sql_files.statement_set(t_env, ["datastream_windows.sql"], {**params, "job_name": config.job_name})
    inserts.attach_as_datastream()


def main(argv: list[str] | None = None) -> None:
    config = from_args(argv)
    env = StreamExecutionEnvironment.get_execution_environment()
    build(config, env)
    if config.source.bounded:  # a local run over a file: wait for it
        env.execute(config.job_name)
    else:  # on the cluster: submitted, detached
        env.execute_async(config.job_name)


if __name__ == "__main__":
    # run as a script (`flink run -py`), this file is `__main__`; its functions must reach the Python workers
    # by reference to the importable module flink_jobs.datastream_windows, not pickled by value
    from flink_jobs.datastream_windows import main as module_main

    module_main(sys.argv[1:])
