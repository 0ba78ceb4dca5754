"""`table_maintenance_schedule`: table maintenance on `dagster.maintenance_cron` (UTC), running from the start."""

import dagster as dg

from config.settings import Settings


def build_schedule(settings: Settings, job: dg.JobDefinition) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="table_maintenance_schedule",
        job=job,
        cron_schedule=settings.dagster.maintenance_cron,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
