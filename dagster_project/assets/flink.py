"""The streaming jobs: materialising one deploys it, upgrades it (savepoint, restart from it) when its code
changed, or does nothing when the running version is current."""

import dagster as dg

from dagster_project.assets.kafka import HTTP_EVENTS_TOPIC
from dagster_project.resources import FlinkResource

RAW_EVENTS_JOB = dg.AssetKey(["flink", "raw_events"])


@dg.asset(
    key=RAW_EVENTS_JOB,
    deps=[HTTP_EVENTS_TOPIC],
    group_name="streaming",
    kinds={"flink"},
    description="PyFlink job raw_events: Kafka http_events -> raw.http_events and raw.dead_letter_events.",
)
def raw_events_flink_job(context: dg.AssetExecutionContext, flink: FlinkResource) -> dg.MaterializeResult:
    result = flink.deploy("raw_events")
    context.log.info(f"raw_events: {result.action} (job {result.job_id})")
    return dg.MaterializeResult(
        metadata={
            "action": result.action,
            "job_id": result.job_id,
            "restored_from": result.restored_from or "",
            "code_version": flink.code_version("raw_events"),
            "flink_ui": dg.MetadataValue.url(f"{flink.rest_url}/#/job/running/{result.job_id}/overview"),
        }
    )
