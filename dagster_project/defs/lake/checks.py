"""The lake's checks of the stream: `freshness` of every streamed table, and the `dead_letter_rate` and
`late_rate` of recent arrivals (`lake_checks` from the UI; the lake's sensor evaluates them without a run)."""

import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta

import dagster as dg

from config.settings import ChecksSection
from dagster_project.defs.keys import table_key
from dagster_project.defs.verdicts import Verdict, selected_results
from dagster_project.resources import IcebergResource, TableStats, ThresholdsResource
from lakehouse import contract

FRESHNESS = "freshness"
DEAD_LETTER_RATE = "dead_letter_rate"
LATE_RATE = "late_rate"
FRESH_TABLES = [spec.identifier for spec in contract.STREAMED_TABLES]
VALID, DEAD, LATE = contract.HTTP_EVENTS, contract.DEAD_LETTER_EVENTS, contract.LATE_EVENTS


def freshness(identifier: str, stats: TableStats, limits: ChecksSection, now_ms: int) -> Verdict:
    """The table's last commit is at most `checks.freshness_minutes` old (the Flink sinks commit on
    checkpoints, an empty commit every few checkpoints when no rows came)."""
    key, committed = table_key(identifier), stats.committed_at_ms
    if committed is None:
        return Verdict(key, FRESHNESS, False, f"{identifier} has no commit yet")
    age = (now_ms - committed) / 1000
    passed = age <= limits.freshness_minutes * 60
    return Verdict(
        key,
        FRESHNESS,
        passed,
        f"last commit {age:.0f} s ago ({'within' if passed else 'beyond'} {limits.freshness_minutes} min)",
        {
            "last_commit_at": dg.MetadataValue.timestamp(committed / 1000),
            "age_seconds": dg.MetadataValue.float(round(age, 1)),
        },
    )


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def arrival_rates(iceberg: IcebergResource, limits: ChecksSection, now: datetime) -> list[Verdict]:
    """The share of the last `rate_window_minutes` of arrivals that were malformed (raw.dead_letter_events), or
    too late to be counted (raw.late_events, per window). The arrivals are the rows the Flink sinks committed in
    that time (the snapshots' summaries: the raw table is never scanned); the late events those detected in it
    (a scan of raw.late_events' recent files, which hold few rows). No DuckDB: the code server, which runs the
    sensors, never loads it."""
    since = now - timedelta(minutes=limits.rate_window_minutes)
    window = {"window_minutes": dg.MetadataValue.int(limits.rate_window_minutes)}
    valid = iceberg.appended_rows(VALID.identifier, since)
    dead = iceberg.appended_rows(DEAD.identifier, since)
    late = iceberg.count_since(LATE.identifier, "window_name", "detected_at", since)
    dead_rate = _rate(dead, valid + dead)
    # per window: one late event is a row for each window that could not count it (the SQL windows, the minute
    # window, the funnel when it is a funnel step)
    late_rates = {str(window): _rate(int(count), valid) for window, count in late.items()}
    late_counts = {str(window): int(count) for window, count in late.items()}
    worst = max(late_rates.values(), default=0.0)
    return [
        Verdict(
            table_key(DEAD.identifier),
            DEAD_LETTER_RATE,
            dead_rate <= limits.max_dead_letter_rate,
            f"{dead} of {valid + dead} messages malformed ({dead_rate:.2%}, at most {limits.max_dead_letter_rate:.2%})",
            {**window, "dead_letters": dg.MetadataValue.int(dead), "rate": dg.MetadataValue.float(dead_rate)},
        ),
        Verdict(
            table_key(LATE.identifier),
            LATE_RATE,
            worst <= limits.max_late_rate,
            f"worst window {worst:.2%} of {valid} events late (at most {limits.max_late_rate:.2%})",
            {
                **window,
                **{f"rate/{window}": dg.MetadataValue.float(rate) for window, rate in late_rates.items()},
                **{f"late/{window}": dg.MetadataValue.int(count) for window, count in late_counts.items()},
            },
        ),
    ]


def lake_verdicts(
    iceberg: IcebergResource,
    limits: ChecksSection,
    now: datetime | None = None,
    stats: Mapping[str, TableStats] | None = None,
) -> list[Verdict]:
    """Every check of this module; `stats` (the tables' `table_stats`) when the caller has read them already."""
    now = now or datetime.now(UTC)
    stats = stats or {identifier: iceberg.table_stats(identifier) for identifier in FRESH_TABLES}
    now_ms = int(now.timestamp() * 1000)
    verdicts = [freshness(identifier, stats[identifier], limits, now_ms) for identifier in FRESH_TABLES]
    return verdicts + arrival_rates(iceberg, limits, now)


CHECK_SPECS = [
    *(dg.AssetCheckSpec(FRESHNESS, asset=table_key(t), description="last commit recent enough") for t in FRESH_TABLES),
    dg.AssetCheckSpec(DEAD_LETTER_RATE, asset=table_key(DEAD.identifier), description="few malformed"),
    dg.AssetCheckSpec(LATE_RATE, asset=table_key(LATE.identifier), description="few events too late to count"),
]


@dg.multi_asset_check(specs=CHECK_SPECS, name="lake_checks", can_subset=True)
def lake_checks(
    context: dg.AssetCheckExecutionContext, iceberg: IcebergResource, thresholds: ThresholdsResource
) -> Iterator[dg.AssetCheckResult]:
    started = time.monotonic()
    verdicts = lake_verdicts(iceberg, thresholds.limits())
    yield from selected_results(context, verdicts)
    selected = len(context.selected_asset_check_keys)
    context.log.info(f"{selected} of {len(verdicts)} checks in {time.monotonic() - started:.1f} s")
