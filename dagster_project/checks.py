"""Asset checks of the streaming side, each one function over the resources:

- `freshness` of every streamed Iceberg table: its last commit is at most `checks.freshness_minutes` old (the
  Flink sinks commit on checkpoints, an empty commit every few checkpoints when no rows came);
- `consumer_lag` of every Flink job: its Kafka consumer group is at most `checks.max_consumer_lag` events
  behind the topic's end;
- `dead_letter_rate` (raw.dead_letter_events) and `late_rate` (raw.late_events, per window): the share of
  the last `checks.rate_window_minutes` of arrivals that were malformed, or too late to be counted;
- `services_running` of the stack's processes (`platform/services`): every process that should run runs and
  answers, the supervisor too;
- `running` of every Flink job: a job that should run is RUNNING, or was not for at most
  `dagster.unhealthy_after_seconds` (restarting, no TaskManager or free slot, gone from the cluster).

They run two ways: the sensors (sensors.py) evaluate them without launching a run (the streaming ones every
`dagster.checks_interval_seconds`, the last two every `dagster.health_interval_seconds`), and a user executes
them from the UI (`streaming_checks`, `stack_checks`). The reconciliation check of Lambda is a dbt test on
reconciliation_daily, an asset check of that model (assets/dbt.py).
"""

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from config.settings import ChecksSection, load_settings
from dagster_project.assets.flink import job_key
from dagster_project.assets.iceberg import STREAMED, table_key
from dagster_project.assets.kafka import consumer_group
from dagster_project.assets.platform import SERVICES
from dagster_project.resources import FlinkResource, IcebergResource, KafkaResource, StackResource
from event_log.topic import TopicOffsets
from flink_jobs import JOBS
from infra.services.flink_jobs import JobStatus

FRESHNESS = "freshness"
CONSUMER_LAG = "consumer_lag"
DEAD_LETTER_RATE = "dead_letter_rate"
LATE_RATE = "late_rate"
SERVICES_RUNNING = "services_running"
JOB_RUNNING = "running"
FRESH_TABLES = [spec.identifier for spec in STREAMED]


@dataclass(frozen=True)
class Verdict:
    """One check's outcome, given either as a result of a check run or as a sensor's evaluation."""

    asset_key: dg.AssetKey
    check_name: str
    passed: bool
    description: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def _fields(self) -> dict[str, Any]:
        return {
            "asset_key": self.asset_key,
            "check_name": self.check_name,
            "passed": self.passed,
            "description": self.description,
            "metadata": dict(self.metadata),
        }

    def result(self) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(**self._fields())

    def evaluation(self) -> dg.AssetCheckEvaluation:
        return dg.AssetCheckEvaluation(**self._fields())


def freshness(identifier: str, stats: Mapping[str, Any], limits: ChecksSection, now_ms: int) -> Verdict:
    key, committed = table_key(identifier), stats.get("committed_at_ms")
    if committed is None:
        return Verdict(key, FRESHNESS, False, f"{identifier} has no commit yet")
    age = (now_ms - int(committed)) / 1000
    passed = age <= limits.freshness_minutes * 60
    return Verdict(
        key,
        FRESHNESS,
        passed,
        f"last commit {age:.0f} s ago ({'within' if passed else 'beyond'} {limits.freshness_minutes} min)",
        {
            "last_commit_at": dg.MetadataValue.timestamp(int(committed) / 1000),
            "age_seconds": dg.MetadataValue.float(round(age, 1)),
        },
    )


def consumer_lag(job: str, lag: int | None, limits: ChecksSection) -> Verdict:
    if lag is None:
        return Verdict(job_key(job), CONSUMER_LAG, False, f"consumer group {consumer_group(job)} never committed")
    passed = lag <= limits.max_consumer_lag
    return Verdict(
        job_key(job),
        CONSUMER_LAG,
        passed,
        f"{lag} events behind the topic's end (at most {limits.max_consumer_lag})",
        {"lag_events": dg.MetadataValue.int(lag), "consumer_group": consumer_group(job)},
    )


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def arrival_rates(iceberg: IcebergResource, limits: ChecksSection, now: datetime) -> list[Verdict]:
    """Dead-letter rate and late rate over the last `rate_window_minutes` of arrivals: the rows the Flink sinks
    committed in that time (the snapshots' summaries: the raw table is never scanned), and the late events
    detected in it (a scan of raw.late_events' recent files, which hold few rows). No DuckDB: the code server,
    which runs the sensors, never loads it."""
    since = now - timedelta(minutes=limits.rate_window_minutes)
    window = {"window_minutes": dg.MetadataValue.int(limits.rate_window_minutes)}
    valid = iceberg.appended_rows("raw.http_events", since)
    dead = iceberg.appended_rows("raw.dead_letter_events", since)
    late = iceberg.late_events_by_window(since)
    dead_rate = _rate(dead, valid + dead)
    # per window: one late event is a row for each window that could not count it (the SQL windows, the minute
    # window, the funnel when it is a funnel step)
    late_rates = {window: _rate(int(count), valid) for window, count in late.items()}
    worst = max(late_rates.values(), default=0.0)
    return [
        Verdict(
            table_key("raw.dead_letter_events"),
            DEAD_LETTER_RATE,
            dead_rate <= limits.max_dead_letter_rate,
            f"{dead} of {valid + dead} messages malformed ({dead_rate:.2%}, at most {limits.max_dead_letter_rate:.2%})",
            {**window, "dead_letters": dg.MetadataValue.int(dead), "rate": dg.MetadataValue.float(dead_rate)},
        ),
        Verdict(
            table_key("raw.late_events"),
            LATE_RATE,
            worst <= limits.max_late_rate,
            f"worst window {worst:.2%} of {valid} events late (at most {limits.max_late_rate:.2%})",
            {
                **window,
                **{f"rate/{window}": dg.MetadataValue.float(rate) for window, rate in late_rates.items()},
                **{f"late/{window}": dg.MetadataValue.int(int(late[window])) for window in late_rates},
            },
        ),
    ]


def evaluate(
    kafka: KafkaResource,
    iceberg: IcebergResource,
    stats: Mapping[str, Mapping[str, Any]] | None = None,
    now: datetime | None = None,
    offsets: TopicOffsets | None = None,
) -> list[Verdict]:
    """Every check of this module; `stats` (the tables' `table_stats`) and `offsets` (the topic's, with the jobs'
    consumer groups) when the caller has read them already."""
    limits = load_settings().checks
    now = now or datetime.now(UTC)
    stats = stats or {identifier: iceberg.table_stats(identifier) for identifier in FRESH_TABLES}
    now_ms = int(now.timestamp() * 1000)
    verdicts = [freshness(identifier, stats[identifier], limits, now_ms) for identifier in FRESH_TABLES]
    offsets = offsets or kafka.offsets([consumer_group(job) for job in JOBS])
    verdicts += [consumer_lag(job, offsets.lag(consumer_group(job)), limits) for job in JOBS]
    verdicts += arrival_rates(iceberg, limits, now)
    return verdicts


def services_running(report: Mapping[str, Any]) -> Verdict:
    """Every process that should run runs and answers; the supervisor too (infra/status.py's report)."""
    down = [s for s in report["services"] if not s["healthy"]]
    if not down:
        return Verdict(SERVICES, SERVICES_RUNNING, True, "every process that should run runs and answers")
    parts = []
    for s in down:
        what = s.get("error") or (f"{s['state']}: {s['health']}" if s.get("pid") else s["state"])
        parts.append(f"{s['name']} ({what})")
    return Verdict(
        SERVICES,
        SERVICES_RUNNING,
        False,
        "not running or not answering: " + "; ".join(parts),
        {"unhealthy": ", ".join(s["name"] for s in down)},
    )


def job_running(job: str, status: JobStatus, since: float | None, now: float, limit_s: int) -> Verdict:
    """A job that should run is RUNNING, or has not been anything else for longer than `limit_s` (restarting,
    waiting for a TaskManager or a free slot, gone from the cluster)."""
    state = str(status.state)
    if state == "RUNNING" or not status.should_run:
        return Verdict(job_key(job), JOB_RUNNING, True, f"{state.lower()} (should run: {status.should_run})")
    for_s = now - since if since is not None else 0.0
    passed = for_s <= limit_s
    cluster = status.cluster or {}
    slots = f"{cluster.get('taskmanagers', '?')} TaskManager(s), {cluster.get('slots-available', '?')} free slot(s)"
    return Verdict(
        job_key(job),
        JOB_RUNNING,
        passed,
        f"{state} for {for_s:.0f} s ({'within' if passed else 'beyond'} {limit_s} s); the cluster has {slots}",
        {"state": state, "for_seconds": dg.MetadataValue.float(round(for_s, 1))},
    )


CHECK_SPECS = [
    *(dg.AssetCheckSpec(FRESHNESS, asset=table_key(t), description="last commit recent enough") for t in FRESH_TABLES),
    *(dg.AssetCheckSpec(CONSUMER_LAG, asset=job_key(j), description="Kafka consumer lag bounded") for j in JOBS),
    dg.AssetCheckSpec(DEAD_LETTER_RATE, asset=table_key("raw.dead_letter_events"), description="few malformed"),
    dg.AssetCheckSpec(LATE_RATE, asset=table_key("raw.late_events"), description="few events too late to count"),
]


@dg.multi_asset_check(specs=CHECK_SPECS, name="streaming_checks", can_subset=True)
def streaming_checks(
    context: dg.AssetCheckExecutionContext, kafka: KafkaResource, iceberg: IcebergResource
) -> Iterator[dg.AssetCheckResult]:
    started = time.monotonic()
    verdicts = evaluate(kafka, iceberg)
    selected = context.selected_asset_check_keys
    yield from (v.result() for v in verdicts if dg.AssetCheckKey(v.asset_key, v.check_name) in selected)
    context.log.info(f"{len(selected)} of {len(verdicts)} checks in {time.monotonic() - started:.1f} s")


STACK_CHECK_SPECS = [
    dg.AssetCheckSpec(SERVICES_RUNNING, asset=SERVICES, description="every process that should run runs"),
    *(
        dg.AssetCheckSpec(JOB_RUNNING, asset=job_key(j), description="the job runs (not restarting for long)")
        for j in JOBS
    ),
]


@dg.multi_asset_check(specs=STACK_CHECK_SPECS, name="stack_checks", can_subset=True)
def stack_checks(
    context: dg.AssetCheckExecutionContext, stack: StackResource, flink: FlinkResource
) -> Iterator[dg.AssetCheckResult]:
    """From the UI: the services, and each job's state since Flink recorded it (the sensor also remembers how
    long a job has been gone from the cluster)."""
    limit, now = load_settings().dagster.unhealthy_after_seconds, time.time()
    verdicts = [services_running(stack.report())]
    for job in JOBS:
        status = flink.status(job)
        since = status.state_since_ms / 1000 if status.state_since_ms else None
        verdicts.append(job_running(job, status, since, now, limit))
    selected = context.selected_asset_check_keys
    yield from (v.result() for v in verdicts if dg.AssetCheckKey(v.asset_key, v.check_name) in selected)
