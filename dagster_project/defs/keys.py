"""The names the domains refer to each other by: the asset keys of the topic, the Flink jobs, the Iceberg
tables and the stack's services, and the tag of a run that recovers something."""

import dagster as dg

HTTP_EVENTS_TOPIC = dg.AssetKey(["kafka", "http_events"])
SERVICES = dg.AssetKey(["platform", "services"])
# on a run a sensor requested to bring something back: its value is the job (or the supervisor) recovered
RECOVERY_TAG = "pipeline/recovery"


def job_key(job: str) -> dg.AssetKey:
    """The asset of a Flink job of `flink_jobs.JOBS`, e.g. flink/streaming."""
    return dg.AssetKey(["flink", job])


def table_key(identifier: str) -> dg.AssetKey:
    """The asset of an Iceberg table of the contract, e.g. iceberg/raw/http_events."""
    return dg.AssetKey(["iceberg", *identifier.split(".")])
