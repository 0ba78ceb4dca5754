"""The ingest domain's definitions: the topic, its observation job, the consumer-lag checks."""

import dagster as dg

from dagster_project.defs.ingest.assets import http_events_topic, observe_sources_job
from dagster_project.defs.ingest.checks import ingest_checks


def build_defs() -> dg.Definitions:
    return dg.Definitions(assets=[http_events_topic], asset_checks=[ingest_checks], jobs=[observe_sources_job])
