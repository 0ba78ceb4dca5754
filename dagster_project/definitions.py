"""Assembles the code location; the pieces live in assets/, resources.py and schedules.py. `pipeline.mode`
decides what is assembled: Lambda adds dbt's batch layer, partitioned by day."""

from __future__ import annotations

import os

import dagster as dg
from dagster_dbt import DbtCliResource

from dagster_project.assets.dbt import build_dbt_assets, dbt_project
from dagster_project.assets.flink import raw_events_flink_job
from dagster_project.assets.iceberg import raw_tables
from dagster_project.assets.kafka import http_events_topic
from dagster_project.resources import build_resources
from dagster_project.schedules import observe_sources_job, observe_sources_schedule
from infra import analytics
from infra.config import Settings, load_settings


def build_definitions(settings: Settings) -> dg.Definitions:
    # dbt runs in a subprocess of this one: the lake's paths and DuckDB's limits (infra/analytics.py)
    for key, value in analytics.dbt_env(settings, base={}).items():
        os.environ.setdefault(key, value)
    project = dbt_project(settings)
    days = dg.DailyPartitionsDefinition(start_date=settings.dagster.first_day.isoformat(), timezone="UTC")
    return dg.Definitions(
        assets=[http_events_topic, raw_events_flink_job, raw_tables, *build_dbt_assets(settings, project, days)],
        jobs=[observe_sources_job],
        schedules=[observe_sources_schedule],
        resources={
            **build_resources(settings),
            "dbt": DbtCliResource(project_dir=project, dbt_executable=str(analytics.DBT_EXECUTABLE)),
        },
    )


defs = build_definitions(load_settings())
