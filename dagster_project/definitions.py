"""Assembles the code location; the pieces live in assets/, resources.py and schedules.py."""

from __future__ import annotations

import dagster as dg

from dagster_project.assets.flink import raw_events_flink_job
from dagster_project.assets.iceberg import raw_tables
from dagster_project.assets.kafka import http_events_topic
from dagster_project.resources import build_resources
from dagster_project.schedules import observe_sources_job, observe_sources_schedule
from infra.config import Settings, load_settings


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[http_events_topic, raw_events_flink_job, raw_tables],
        jobs=[observe_sources_job],
        schedules=[observe_sources_schedule],
        resources=build_resources(settings),
    )


defs = build_definitions(load_settings())
