"""The lake's table contract: every Iceberg table, defined once.

Each table's schema (with a doc per column), its layer (`raw`: the events as they arrived; `speed`: the stream's
windows; `batch`: Lambda's recomputation of them), its day partitioning and its writer (the Flink job whose
`writes` name it, or dbt's batch layer). The Flink jobs' SQL inserts by position into these columns, dbt reads
them as sources, Dagster makes an asset of each; `tests/unit/test_registries.py` ties them to the jobs' SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pyiceberg.schema import Schema
from pyiceberg.types import (
    BooleanType,
    DoubleType,
    IntegerType,
    ListType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from flink_jobs import JOBS

Layer = Literal["raw", "speed", "batch"]
LAYERS: tuple[Layer, ...] = ("raw", "speed", "batch")
BATCH_WRITER = "dbt"  # the batch layer's tables are written by dbt's batch models (dbt/models/batch)

# Keep metadata bounded and let concurrent commits (one per sink per checkpoint) retry instead of failing.
TABLE_PROPERTIES = {
    "format-version": "2",
    "write.format.default": "parquet",
    "write.parquet.compression-codec": "zstd",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "50",
    "commit.retry.num-retries": "10",
}


@dataclass(frozen=True)
class Refirings:
    """An append-only table of window firings (allowed lateness > 0 fires a window again): readers see the
    latest firing of each window through `view`; maintenance keeps only that row."""

    view: str  # the identifier readers use, e.g. speed.requests_per_route_minute
    window_key: tuple[str, ...]
    firing_column: str = "firing"

    def latest_sql(self, relation: str) -> str:
        """The one definition of "latest firing per window", as SQL over `relation` (DuckDB)."""
        key = ", ".join(self.window_key)
        return (
            f"SELECT * FROM {relation} "
            f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {self.firing_column} DESC) = 1"
        )


@dataclass(frozen=True)
class TableSpec:
    identifier: str
    schema: Schema
    day_partition_on: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    doc: str = ""
    refirings: Refirings | None = None

    @property
    def layer(self) -> Layer:
        """The namespace of its identifier: raw, speed or batch."""
        namespace = self.identifier.split(".", 1)[0]
        if namespace not in LAYERS:
            raise ValueError(f"{self.identifier}: its namespace must be one of {', '.join(LAYERS)}")
        return namespace  # type: ignore[return-value]

    @property
    def name(self) -> str:
        """The identifier without its namespace, e.g. http_events."""
        return self.identifier.split(".", 1)[1]

    @property
    def writer(self) -> str:
        """Who appends to it: the Flink job whose `writes` name it, or dbt (the batch layer)."""
        if self.layer == "batch":
            return BATCH_WRITER
        for job in JOBS.values():
            if self.identifier in job.writes:
                return job.name
        raise LookupError(f"{self.identifier}: no Flink job in flink_jobs.JOBS writes it")

    @property
    def streamed(self) -> bool:
        """Written by a Flink job (raw and speed), not by the batch layer."""
        return self.layer != "batch"


def _fields(*columns: tuple[str, Any, bool, str]) -> Schema:
    return Schema(
        *(
            NestedField(i, name, typ, required=required, doc=doc)
            for i, (name, typ, required, doc) in enumerate(columns, start=1)
        )
    )


HTTP_EVENTS = TableSpec(
    identifier="raw.http_events",
    doc="Every valid event of the topic, late ones included; partitioned by day of event_time.",
    day_partition_on="event_time",
    schema=_fields(
        ("event_id", StringType(), True, "unique id of the request event"),
        ("event_time", TimestamptzType(), True, "request start time at the server (UTC)"),
        ("service", StringType(), True, "name of the web service"),
        ("method", StringType(), True, "HTTP method"),
        ("route", StringType(), True, "route template, e.g. /users/{id}; the path when no route matched"),
        ("path", StringType(), True, "request path without the query string"),
        ("status_code", IntegerType(), True, "HTTP status of the response"),
        ("duration_ms", DoubleType(), True, "time from request start to the last response byte"),
        ("user_id", StringType(), False, "authenticated user, if any"),
        ("client_address", StringType(), False, "client address (possibly anonymised)"),
        ("user_agent", StringType(), False, "User-Agent header"),
        ("referer", StringType(), False, "Referer header without its query string"),
        ("trace_id", StringType(), False, "trace id from traceparent / X-Request-ID"),
        ("request_bytes", LongType(), False, "request body size"),
        ("response_bytes", LongType(), False, "response body size"),
        ("schema_version", IntegerType(), False, "event schema version"),
        ("kafka_partition", IntegerType(), False, "Kafka partition the event was read from"),
        ("kafka_offset", LongType(), False, "Kafka offset of the event"),
        ("kafka_timestamp", TimestamptzType(), False, "Kafka record timestamp"),
        ("ingested_at", TimestamptzType(), False, "when Flink wrote the row"),
        # added after the first release: new columns go last, where schema evolution puts them in old tables
        ("device_class", StringType(), False, "from user_agent: bot, tablet, mobile, tv, console, desktop, other"),
        ("is_bot", BooleanType(), False, "user_agent names a crawler, monitor or HTTP library"),
    ),
)

DEAD_LETTER_EVENTS = TableSpec(
    identifier="raw.dead_letter_events",
    doc="Messages of the topic that are not valid events, with the reason and where they were in Kafka.",
    day_partition_on="kafka_timestamp",
    schema=_fields(
        ("payload", StringType(), False, "the message as received"),
        ("error_reason", StringType(), True, "the first validation rule the message broke"),
        ("kafka_partition", IntegerType(), True, "Kafka partition"),
        ("kafka_offset", LongType(), True, "Kafka offset"),
        ("kafka_timestamp", TimestamptzType(), True, "Kafka record timestamp"),
        ("ingested_at", TimestamptzType(), False, "when Flink wrote the row"),
    ),
)

LATE_EVENTS = TableSpec(
    identifier="raw.late_events",
    doc="Events a window could not count (behind its watermark, plus allowed lateness), with the window missed.",
    day_partition_on="event_time",
    schema=_fields(
        ("event_id", StringType(), True, "the late event"),
        ("event_time", TimestamptzType(), True, "its event time"),
        ("service", StringType(), True, "web service"),
        ("route", StringType(), True, "route template"),
        ("status_code", IntegerType(), True, "HTTP status"),
        ("user_id", StringType(), False, "user, if any"),
        ("job_name", StringType(), True, "the Flink job that could not count it"),
        ("window_name", StringType(), True, "which of the job's windows (sql_windows: all of windows.sql)"),
        ("window_start", TimestamptzType(), True, "start of the (1-minute) window it missed"),
        ("window_end", TimestamptzType(), True, "end of that window"),
        ("watermark", TimestamptzType(), False, "the job's watermark when the event arrived"),
        ("kafka_partition", IntegerType(), False, "Kafka partition"),
        ("kafka_offset", LongType(), False, "Kafka offset"),
        ("detected_at", TimestamptzType(), False, "when the job routed it here"),
    ),
)


def _window_table(
    identifier: str,
    doc: str,
    *columns: tuple[str, Any, bool, str],
    start: str = "window_start",
    refirings: Refirings | None = None,
) -> TableSpec:
    return TableSpec(
        identifier=identifier, doc=doc, day_partition_on=start, schema=_fields(*columns), refirings=refirings
    )


_WINDOW = (
    ("window_start", TimestamptzType(), True, "window start (UTC, inclusive)"),
    ("window_end", TimestamptzType(), True, "window end (UTC, exclusive)"),
)
API_REQUESTS_PER_MINUTE = _window_table(
    "speed.api_requests_per_minute",
    "TUMBLE 1 minute: requests per service, route and status (flink_jobs/sql/windows.sql).",
    *_WINDOW,
    ("service", StringType(), True, "web service"),
    ("route", StringType(), True, "route template"),
    ("status_code", IntegerType(), True, "HTTP status"),
    ("request_count", LongType(), True, "distinct events"),
    ("error_count", LongType(), True, "distinct events with status >= 500"),
    ("avg_duration_ms", DoubleType(), False, "mean duration"),
    ("p50_duration_ms", DoubleType(), False, "median duration"),
    ("p95_duration_ms", DoubleType(), False, "95th percentile duration"),
    ("max_duration_ms", DoubleType(), False, "slowest request"),
)
API_TRAFFIC_SLIDING_5M = _window_table(
    "speed.api_traffic_sliding_5m",
    "HOP 5 minutes, sliding by 1 minute: traffic and error rate per service and route.",
    *_WINDOW,
    ("service", StringType(), True, "web service"),
    ("route", StringType(), True, "route template"),
    ("request_count", LongType(), True, "distinct events in the 5 minutes"),
    ("error_count", LongType(), True, "distinct events with status >= 500"),
    ("error_rate", DoubleType(), True, "error_count / request_count"),
    ("requests_per_second", DoubleType(), True, "request_count / 300"),
    ("p95_duration_ms", DoubleType(), False, "95th percentile duration"),
)
USER_SESSIONS = _window_table(
    "speed.user_sessions",
    "SESSION windows (gap: streaming.session_gap_minutes): a user's visits per service.",
    ("session_start", TimestamptzType(), True, "first request"),
    ("session_end", TimestamptzType(), True, "last request + the session gap"),
    ("service", StringType(), True, "web service"),
    ("user_key", StringType(), True, "user id, else client address"),
    ("user_id", StringType(), False, "user id, if the user was known"),
    ("last_request_at", TimestamptzType(), True, "last request"),
    ("request_count", LongType(), True, "distinct events"),
    ("error_count", LongType(), True, "distinct events with status >= 500"),
    ("distinct_routes", LongType(), True, "how many routes were visited"),
    ("routes", ListType(100, StringType(), element_required=False), False, "the routes visited"),
    start="session_start",
)
API_DAILY_RUNNING_TOTALS = _window_table(
    "speed.api_daily_running_totals",
    "CUMULATE 1 day in 1-hour steps: running daily totals per service (window_end: the step).",
    *_WINDOW,
    ("service", StringType(), True, "web service"),
    ("request_count", LongType(), True, "distinct events since the day's start"),
    ("error_count", LongType(), True, "distinct events with status >= 500"),
    ("distinct_users", LongType(), True, "distinct user ids"),
)

REQUESTS_PER_ROUTE_MINUTE_FIRINGS = _window_table(
    "speed.requests_per_route_minute_firings",
    "DataStream 1-minute window with allowed lateness (flink_jobs/datastream_windows.py): one row per firing, "
    "append-only; a late event inside the allowed lateness fires the window again with the next `firing`. "
    "Read it through the view speed.requests_per_route_minute (the latest firing of each window).",
    *_WINDOW,
    ("service", StringType(), True, "web service"),
    ("route", StringType(), True, "route template"),
    ("request_count", LongType(), True, "events counted so far in the window"),
    ("error_count", LongType(), True, "of which status >= 500"),
    ("firing", IntegerType(), True, "0 when the watermark passed the window end, 1, 2, ... for late re-firings"),
    ("fired_at", TimestamptzType(), True, "wall-clock time of the firing"),
    ("watermark", TimestamptzType(), False, "the window operator's watermark when it fired"),
    refirings=Refirings(
        view="speed.requests_per_route_minute", window_key=("window_start", "window_end", "service", "route")
    ),
)
CHECKOUT_FUNNELS = _window_table(
    "speed.checkout_funnels",
    "Count window with timeout (flink_jobs/datastream_windows.py): a user's checkout funnel closes after "
    "len(streaming.funnel_routes) funnel requests or streaming.funnel_timeout_minutes, whichever comes first.",
    *_WINDOW,
    ("service", StringType(), True, "web service"),
    ("user_key", StringType(), True, "user id, else client address"),
    ("steps", IntegerType(), True, "funnel requests in the window"),
    ("deepest_step", IntegerType(), True, "1-based position in streaming.funnel_routes of the furthest step reached"),
    ("last_route", StringType(), True, "route of the last funnel request"),
    ("outcome", StringType(), True, "completed (the last step succeeded) | abandoned"),
    ("closed_by", StringType(), True, "count (all steps arrived) | timeout"),
)

SPEED_TABLES: list[TableSpec] = [
    API_REQUESTS_PER_MINUTE,
    API_TRAFFIC_SLIDING_5M,
    USER_SESSIONS,
    API_DAILY_RUNNING_TOTALS,
    REQUESTS_PER_ROUTE_MINUTE_FIRINGS,
    CHECKOUT_FUNNELS,
]
# Lambda's batch layer (dbt/models/batch): the same measures recomputed from raw.http_events, same grain and
# columns, one day partition rewritten per batch run. Kappa leaves them empty. The DataStream minute windows
# are batch-computed once, final: the columns of their reader view without the firing bookkeeping.
_FIRING_COLUMNS = ("firing", "fired_at", "watermark")
BATCH_TABLES: list[TableSpec] = [
    *(
        replace(
            spec,
            identifier=f"batch.{spec.name}",
            doc=f"Batch layer (Lambda): {spec.identifier} recomputed from raw.http_events, a day partition per run.",
        )
        for spec in (API_REQUESTS_PER_MINUTE, API_TRAFFIC_SLIDING_5M, USER_SESSIONS, API_DAILY_RUNNING_TOTALS,
                     CHECKOUT_FUNNELS)
    ),
    _window_table(
        "batch.requests_per_route_minute",
        "Batch layer (Lambda): speed.requests_per_route_minute (the latest firing of each window) recomputed "
        "from raw.http_events, a day partition per run.",
        *(
            (f.name, f.field_type, f.required, f.doc or "")
            for f in REQUESTS_PER_ROUTE_MINUTE_FIRINGS.schema.fields
            if f.name not in _FIRING_COLUMNS
        ),
    ),
]  # fmt: skip
TABLES: list[TableSpec] = [HTTP_EVENTS, DEAD_LETTER_EVENTS, LATE_EVENTS, *SPEED_TABLES, *BATCH_TABLES]
NAMESPACES = LAYERS
STREAMED_TABLES: list[TableSpec] = [spec for spec in TABLES if spec.streamed]


def by_identifier(identifier: str) -> TableSpec:
    """The table `identifier` names (e.g. raw.http_events), or a LookupError naming the known ones."""
    for spec in TABLES:
        if spec.identifier == identifier:
            return spec
    raise LookupError(f"no table {identifier!r} in the contract; known: {', '.join(t.identifier for t in TABLES)}")
