"""The streaming domain's definitions: the Flink jobs, their `running` checks, the job sensor."""

import dagster as dg

from config.settings import Settings
from dagster_project.defs.streaming.assets import flink_job_assets
from dagster_project.defs.streaming.checks import build_checks
from dagster_project.defs.streaming.sensors import build_sensor


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=flink_job_assets, asset_checks=[build_checks(settings)], sensors=[build_sensor(settings)]
    )
