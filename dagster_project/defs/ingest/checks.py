"""`consumer_lag` of every Flink job: its Kafka consumer group is at most `checks.max_consumer_lag` events
behind the topic's end (`ingest_checks` from the UI; the lake's sensor evaluates it without a run)."""

from collections.abc import Iterator

import dagster as dg

from config.settings import ChecksSection
from dagster_project.defs.ingest.assets import CONSUMER_GROUPS, look_at_topic
from dagster_project.defs.keys import job_key
from dagster_project.defs.verdicts import Verdict, selected_results
from dagster_project.resources import KafkaResource, ThresholdsResource, TopicOffsets

CONSUMER_LAG = "consumer_lag"


def consumer_lag(job: str, lag: int | None, limits: ChecksSection) -> Verdict:
    group = CONSUMER_GROUPS[job]
    if lag is None:
        return Verdict(job_key(job), CONSUMER_LAG, False, f"consumer group {group} never committed")
    passed = lag <= limits.max_consumer_lag
    return Verdict(
        job_key(job),
        CONSUMER_LAG,
        passed,
        f"{lag} events behind the topic's end (at most {limits.max_consumer_lag})",
        {"lag_events": dg.MetadataValue.int(lag), "consumer_group": group},
    )


def lag_verdicts(offsets: TopicOffsets, limits: ChecksSection) -> list[Verdict]:
    """The lag of every job's group, from one look at the topic (`look_at_topic`)."""
    return [consumer_lag(job, offsets.lag(group), limits) for job, group in CONSUMER_GROUPS.items()]


CHECK_SPECS = [
    dg.AssetCheckSpec(CONSUMER_LAG, asset=job_key(job), description="Kafka consumer lag bounded")
    for job in CONSUMER_GROUPS
]


@dg.multi_asset_check(specs=CHECK_SPECS, name="ingest_checks", can_subset=True)
def ingest_checks(
    context: dg.AssetCheckExecutionContext, kafka: KafkaResource, thresholds: ThresholdsResource
) -> Iterator[dg.AssetCheckResult]:
    yield from selected_results(context, lag_verdicts(look_at_topic(kafka), thresholds.limits()))
