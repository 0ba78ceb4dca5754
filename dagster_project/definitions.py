"""The code location's entry module: `build_definitions` merges the domains' definitions (`defs/`) with the
resources (`resources/`). `pipeline.mode` decides what is assembled: Kappa makes the replayed speed tables
materialisable per day (a Flink batch replay); Lambda adds dbt's batch layer, partitioned by day, and its daily
schedule."""

from __future__ import annotations

import dagster as dg

from config.settings import Settings, load_settings
from dagster_project.defs.analytics.definitions import build_defs as analytics_defs
from dagster_project.defs.ingest.definitions import build_defs as ingest_defs
from dagster_project.defs.lake.definitions import build_defs as lake_defs
from dagster_project.defs.partitions import daily_partitions
from dagster_project.defs.platform.definitions import build_defs as platform_defs
from dagster_project.defs.streaming.definitions import build_defs as streaming_defs
from dagster_project.resources import build_resources, dbt_project


def build_definitions(settings: Settings) -> dg.Definitions:
    days = daily_partitions(settings)
    return dg.Definitions.merge(
        ingest_defs(),
        streaming_defs(settings),
        lake_defs(settings, days),
        analytics_defs(settings, dbt_project(settings), days),
        platform_defs(settings),
        dg.Definitions(
            resources=build_resources(settings),
            # every step of a run in the run worker itself: the default executor starts a process per step, each
            # loading the whole code location again (~250 MiB beside the worker) for steps that are one dbt
            # invocation, one Flink submission or one replay; dbt runs its models in parallel itself (dbt.threads)
            executor=dg.in_process_executor,
        ),
    )


defs = build_definitions(load_settings())
