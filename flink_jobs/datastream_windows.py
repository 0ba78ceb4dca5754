"""The windows Flink SQL cannot say, in PyFlink's DataStream API: part of the streaming job (streaming.py).

    events (valid, each event_id once)
      -> datastream_inputs.sql (python_input): what Python needs, event time and watermarks carried over
         |- the minute window's rows: events ahead of the watermark counted per second, service and route in SQL,
         |  events behind it one by one -> key (service, route) -> 1-minute event-time window, allowed lateness
         |  (streaming.allowed_lateness_seconds)
         |     -> speed.requests_per_route_minute_firings, one row per firing (append-only, `firing` 0, 1, ...)
         |     -> late side output (later than watermark + allowed lateness) -> raw.late_events
         |- the funnel's rows: the funnel routes' requests -> key (service, user_key) -> count window with timeout
               (checkout_funnel.py) -> speed.checkout_funnels; a funnel request behind the watermark -> raw.late_events
      -> back to tables -> sql/datastream_windows.sql (the INSERTs into Iceberg's Flink sink, with the job's others)

Python sees one row per second, service and route plus the funnel requests and the few events behind the
watermark, not every request (datastream_inputs.sql says why the minute's firings stay exactly what they were).

A re-fired window is a new row with the next `firing`; readers take the latest firing of each window through
one view (speed.requests_per_route_minute, lakehouse/duckdb_views.py) and table maintenance collapses older
firings, so no reader ever sees two rows for one window, and no reader needs Iceberg equality deletes (which
pyiceberg 0.12 cannot read). Every operator has a fixed uid, so a savepoint taken before a code change
restores after it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from pyflink.common import Row, Types
from pyflink.datastream import DataStream, OutputTag
from pyflink.datastream.functions import KeyedProcessFunction, ProcessFunction
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor
from pyflink.table import StreamTableEnvironment

from flink_jobs import minute_window, udfs
from flink_jobs.checkout_funnel import ClosedFunnel, Funnel, FunnelStep
from flink_jobs.job_config import JobConfig
from flink_jobs.minute_window import Firing, MinuteWindow

MINUTE_MS = 60_000
MINUTE_WINDOW = "requests_per_route_minute"
FUNNEL_WINDOW = "checkout_funnel"
KEY = Types.TUPLE([Types.STRING(), Types.STRING()])
_s, _i, _j = Types.STRING(), Types.INT(), Types.LONG()
# a minute window's row of python_input: `requests` events (one, with its own fields, when behind the watermark)
# (watermark_ms: the job's watermark when the request arrived; None for a per-second count, which is ahead of it)
COUNTED_FIELDS = ["event_id", "event_ms", "service", "route", "status_code", "user_id", "requests", "errors",
                  "kafka_partition", "kafka_offset", "watermark_ms"]  # fmt: skip
COUNTED = Types.ROW_NAMED(COUNTED_FIELDS, [_s, _j, _s, _s, _i, _s, _j, _j, _i, _j, _j])
# a funnel request
EVENT_FIELDS = ["event_id", "event_ms", "service", "route", "status_code", "user_id", "user_key", "kafka_partition",
                "kafka_offset", "watermark_ms"]  # fmt: skip
EVENT = Types.ROW_NAMED(EVENT_FIELDS, [_s, _j, _s, _s, _i, _s, _s, _i, _j, _j])
# rows with field names: the next Python operator in the chain gets the object itself, never decoded by type
Counted, Event = Row(*COUNTED_FIELDS), Row(*EVENT_FIELDS)
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


FUNNEL_INPUT = OutputTag("funnel-input", EVENT)


class SplitInput(ProcessFunction):
    """A row of python_input: the minute window's rows as COUNTED (main output), the funnel's as EVENT (side
    output), each with its event time in epoch milliseconds (the element's timestamp: the same in both Python
    execution modes, where the row's own Instant would be a Python or a Java object)."""

    def process_element(self, row: Row, ctx: Any) -> Iterator[Any]:
        if row.input == "funnel":
            yield FUNNEL_INPUT, Event(
                row.event_id, ctx.timestamp(), row.service, row.route, row.status_code, row.user_id, row.user_key,
                row.kafka_partition, row.kafka_offset, row.watermark_ms,
            )  # fmt: skip
        else:
            yield Counted(
                row.event_id, ctx.timestamp(), row.service, row.route, row.status_code, row.user_id, row.requests,
                row.errors, row.kafka_partition, row.kafka_offset, row.watermark_ms,
            )  # fmt: skip


def late_row(event: Row, window_name: str, window_start_ms: int, window_end_ms: int, watermark_ms: int) -> Row:
    return Row(
        event.event_id, event.event_ms, event.service, event.route, event.status_code, event.user_id,
        window_name, window_start_ms, window_end_ms, watermark_ms, event.kafka_partition, event.kafka_offset,
    )  # fmt: skip


# ---- requests per service and route per minute, with allowed lateness ----

LATE_FOR_MINUTE = OutputTag("late-for-minute", LATE)


class MinuteWindows(KeyedProcessFunction):
    """The open minute windows of a service and route in keyed state (minute_window.py holds the rules), a timer
    at each window's last millisecond (its first firing) and, with allowed lateness, one at the end of the
    lateness (the window is purged)."""

    def __init__(self, allowed_lateness_ms: int) -> None:
        self.allowed_lateness_ms = allowed_lateness_ms

    def open(self, runtime_context: Any) -> None:
        descriptor = MapStateDescriptor("minute-windows", Types.LONG(), Types.PICKLED_BYTE_ARRAY())
        self.windows = runtime_context.get_map_state(descriptor)

    def process_element(self, value: Row, ctx: Any) -> Iterator[Any]:
        start = minute_window.window_start(value.event_ms)
        known = self.windows.contains(start)
        window = self.windows.get(start) if known else MinuteWindow(start)
        fired = minute_window.count(
            window, value.requests, value.errors, value.watermark_ms, self.allowed_lateness_ms
        )  # fmt: skip
        if fired is None:  # late: counted nowhere, kept aside (only a request on its own can be late)
            yield LATE_FOR_MINUTE, late_row(value, MINUTE_WINDOW, window.start_ms, window.end_ms, value.watermark_ms)
            return
        self.windows.put(start, window)
        if not known:
            ctx.timer_service().register_event_time_timer(window.last_ms)
        key = ctx.get_current_key()
        for firing in fired:
            yield firing_row(key, firing, value.watermark_ms)

    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Row]:
        key = ctx.get_current_key()
        for start in list(self.windows.keys()):
            window = self.windows.get(start)
            if window.last_ms == timestamp and window.firings == 0:
                for firing in window.fire():
                    yield firing_row(key, firing, timestamp)
                if self.allowed_lateness_ms:
                    self.windows.put(start, window)
                    ctx.timer_service().register_event_time_timer(window.last_ms + self.allowed_lateness_ms)
                else:
                    self.windows.remove(start)
            elif window.firings and window.last_ms + self.allowed_lateness_ms <= timestamp:
                self.windows.remove(start)


def firing_row(key: tuple[str, str], firing: Firing, watermark_ms: int) -> Row:
    return Row(
        firing.window_start_ms, firing.window_end_ms, key[0], key[1], firing.request_count, firing.error_count,
        firing.firing, int(time.time() * 1000), watermark_ms,
    )  # fmt: skip


def requests_per_route_minute(counted: DataStream, allowed_lateness_ms: int) -> tuple[DataStream, DataStream]:
    """(firings, late events) of the 1-minute window per service and route, over the minute window's rows."""
    firings = (
        counted.key_by(lambda e: (e.service, e.route), key_type=KEY)
        .process(MinuteWindows(allowed_lateness_ms), output_type=FIRING)
        .name(MINUTE_WINDOW)
        .uid(f"{MINUTE_WINDOW}-window")
    )
    return firings, firings.get_side_output(LATE_FOR_MINUTE)


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
        watermark = value.watermark_ms  # the job's when it arrived (this operator's may still be behind it)
        if watermark is not None and value.event_ms <= watermark:  # its funnel may have timed out: kept aside
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
    """(closed funnels, late funnel requests) per service and user, over the funnel's rows."""
    funnels = (
        events.key_by(lambda e: (e.service, e.user_key), key_type=KEY)
        .process(CountWindowWithTimeout(routes, timeout_ms), output_type=FUNNEL)
        .name(FUNNEL_WINDOW)
        .uid(f"{FUNNEL_WINDOW}-window")
    )
    return funnels, funnels.get_side_output(LATE_FOR_FUNNEL)


# ---- into the job ----


def add_windows(t_env: StreamTableEnvironment, config: JobConfig) -> None:
    """Read `python_input` (datastream_inputs.sql) into the Python windows; register what they emit as the views
    `minute_firings`, `closed_funnels` and `late_window_events`, which datastream_windows.sql inserts into Iceberg.
    Inserts only (a window's row, the de-duplication's first rows); each row keeps its event time, watermarks
    follow."""
    streaming = config.streaming
    if config.source.kind == "file":
        # a Python operator holds a watermark back until its bundle of elements is done, so an element that
        # arrived after the watermark would be processed before it: over a file, one element per bundle keeps
        # lateness exact and repeatable (on the cluster it is judged up to one bundle late, docs/streaming.md)
        t_env.get_config().set("python.fn-execution.bundle.size", "1")
    udfs.use_execution_mode(t_env, config.python_execution_mode)
    counted = (
        t_env.to_data_stream(t_env.from_path("python_input"))
        .process(SplitInput(), output_type=COUNTED)
        .name("python-input")
        .uid("python-input")
    )
    events = counted.get_side_output(FUNNEL_INPUT)
    firings, late_minute = requests_per_route_minute(counted, streaming.allowed_lateness_seconds * 1000)
    funnels, late_funnel = checkout_funnels(
        events, tuple(streaming.funnel_routes), streaming.funnel_timeout_minutes * MINUTE_MS
    )
    t_env.create_temporary_view("minute_firings", t_env.from_data_stream(firings))
    t_env.create_temporary_view("closed_funnels", t_env.from_data_stream(funnels))
    t_env.create_temporary_view("late_window_events", t_env.from_data_stream(late_minute.union(late_funnel)))
