"""The analytics domain's definitions: the dbt models (and in Lambda the batch layer and the batch.* tables it
publishes), the dbt jobs and their schedules."""

import dagster as dg
from dagster_dbt import DbtProject

from config.settings import Settings
from dagster_project.defs.analytics.assets import build_dbt_assets
from dagster_project.defs.analytics.jobs import batch_layer_job, dbt_build_job
from dagster_project.defs.analytics.schedules import build_schedules


def build_defs(settings: Settings, project: DbtProject, days: dg.DailyPartitionsDefinition) -> dg.Definitions:
    return dg.Definitions(
        assets=build_dbt_assets(settings, project, days),
        jobs=[dbt_build_job, batch_layer_job] if settings.pipeline.mode == "lambda" else [dbt_build_job],
        schedules=build_schedules(settings),
    )
