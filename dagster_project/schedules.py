"""Observation schedules: the topic's offsets and the tables' snapshots, every minute."""

from __future__ import annotations

import dagster as dg

from dagster_project.assets.iceberg import RAW_TABLES, table_key
from dagster_project.assets.kafka import HTTP_EVENTS_TOPIC

observe_sources_job = dg.define_asset_job(
    "observe_sources_job",
    selection=dg.AssetSelection.assets(HTTP_EVENTS_TOPIC, *(table_key(t) for t in RAW_TABLES)),
)

observe_sources_schedule = dg.ScheduleDefinition(
    name="observe_sources_schedule",
    job=observe_sources_job,
    cron_schedule="* * * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
