"""Assembles the code location; the pieces live in assets/, checks.py, jobs.py, schedules.py, sensors.py and
resources.py. `pipeline.mode` decides what is assembled: Kappa makes the replayed speed tables materialisable
per day (a Flink batch replay); Lambda adds dbt's batch layer, partitioned by day, and its daily schedule."""

from __future__ import annotations

import dagster as dg
from dagster_dbt import DbtCliResource

from config.settings import Settings, load_settings
from dagster_project.assets.dbt import build_dbt_assets, dbt_project
from dagster_project.assets.flink import flink_job_assets
from dagster_project.assets.iceberg import build_table_assets
from dagster_project.assets.kafka import http_events_topic
from dagster_project.assets.platform import services
from dagster_project.checks import stack_checks, streaming_checks
from dagster_project.jobs import observe_sources_job, recover_services_job, table_maintenance_job
from dagster_project.partitions import daily_partitions
from dagster_project.resources import build_resources
from dagster_project.schedules import build_schedules
from dagster_project.sensors import build_sensors
from lakehouse import dbt_runner


def build_definitions(settings: Settings) -> dg.Definitions:
    project = dbt_project(settings)
    days = daily_partitions(settings)
    return dg.Definitions(
        assets=[
            http_events_topic,
            services,
            *flink_job_assets,
            *build_table_assets(settings, days),
            *build_dbt_assets(settings, project, days),
        ],
        asset_checks=[streaming_checks, stack_checks],
        jobs=[observe_sources_job, table_maintenance_job, recover_services_job],
        # every step of a run in the run worker itself: the default executor starts a process per step, each
        # loading the whole code location again (~250 MiB beside the worker) for steps that are one dbt
        # invocation, one Flink submission or one replay; dbt runs its models in parallel itself (dbt.threads)
        executor=dg.in_process_executor,
        schedules=build_schedules(settings, days),
        sensors=build_sensors(settings),
        resources={
            **build_resources(settings),
            "dbt": DbtCliResource(project_dir=project, dbt_executable=str(dbt_runner.DBT_EXECUTABLE)),
        },
    )


defs = build_definitions(load_settings())
