"""The lake domain's definitions: the tables (and in Kappa their replay), their checks, the sensor that
evaluates the stream's checks and observes the tables, table maintenance and its schedule."""

import dagster as dg

from config.settings import Settings
from dagster_project.defs.lake.assets import build_table_assets
from dagster_project.defs.lake.checks import lake_checks
from dagster_project.defs.lake.jobs import build_maintenance_job
from dagster_project.defs.lake.schedules import build_schedule
from dagster_project.defs.lake.sensors import build_sensor


def build_defs(settings: Settings, days: dg.DailyPartitionsDefinition) -> dg.Definitions:
    maintenance = build_maintenance_job(settings)
    return dg.Definitions(
        assets=build_table_assets(settings, days),
        asset_checks=[lake_checks],
        jobs=[maintenance],
        schedules=[build_schedule(settings, maintenance)],
        sensors=[build_sensor(settings)],
    )
