"""Schedules (cron in UTC, from the `dagster` section of pipeline.yaml), all running from the start:

- `dbt_build_schedule`: dbt build of staging and marts (Lambda: also the serving views and the reconciliation);
- `batch_layer_schedule` (Lambda): yesterday's day partition of the batch layer;
- `table_maintenance_schedule`: compaction and snapshot expiry of the Iceberg tables.
"""

from datetime import UTC, timedelta

import dagster as dg

from config.settings import Settings
from dagster_project.jobs import batch_layer_job, dbt_build_job, table_maintenance_job

RUNNING = dg.DefaultScheduleStatus.RUNNING


def build_schedules(settings: Settings, days: dg.DailyPartitionsDefinition) -> list[dg.ScheduleDefinition]:
    d = settings.dagster
    schedules = [
        dg.ScheduleDefinition(
            name="dbt_build_schedule", job=dbt_build_job, cron_schedule=d.dbt_cron, default_status=RUNNING
        ),
        dg.ScheduleDefinition(
            name="table_maintenance_schedule",
            job=table_maintenance_job,
            cron_schedule=d.maintenance_cron,
            default_status=RUNNING,
        ),
    ]
    if settings.pipeline.mode != "lambda":
        return schedules

    @dg.schedule(name="batch_layer_schedule", job=batch_layer_job, cron_schedule=d.batch_cron, default_status=RUNNING)
    def batch_layer_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        # the last complete day before the tick
        day = (context.scheduled_execution_time.astimezone(UTC) - timedelta(days=1)).date()
        if day < settings.dagster.first_day:
            return dg.SkipReason(f"{day} is before dagster.first_day ({settings.dagster.first_day})")
        return dg.RunRequest(run_key=day.isoformat(), partition_key=day.isoformat())

    return [*schedules, batch_layer_schedule]
