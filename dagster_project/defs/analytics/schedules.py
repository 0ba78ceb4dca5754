"""The dbt jobs' schedules (cron in UTC from the `dagster` section, running from the start): `dbt_build_schedule`,
and in Lambda `batch_layer_schedule`, yesterday's day partition of the batch layer."""

from datetime import UTC, timedelta

import dagster as dg

from config.settings import Settings
from dagster_project.defs.analytics.jobs import batch_layer_job, dbt_build_job

RUNNING = dg.DefaultScheduleStatus.RUNNING


def build_schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    d = settings.dagster
    dbt_build_schedule = dg.ScheduleDefinition(
        name="dbt_build_schedule", job=dbt_build_job, cron_schedule=d.dbt_cron, default_status=RUNNING
    )
    if settings.pipeline.mode != "lambda":
        return [dbt_build_schedule]

    @dg.schedule(name="batch_layer_schedule", job=batch_layer_job, cron_schedule=d.batch_cron, default_status=RUNNING)
    def batch_layer_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        # the last complete day before the tick
        day = (context.scheduled_execution_time.astimezone(UTC) - timedelta(days=1)).date()
        if day < d.first_day:
            return dg.SkipReason(f"{day} is before dagster.first_day ({d.first_day})")
        return dg.RunRequest(run_key=day.isoformat(), partition_key=day.isoformat())

    return [dbt_build_schedule, batch_layer_schedule]
