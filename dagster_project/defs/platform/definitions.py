"""The platform domain's definitions: the services asset, its check and sensor, the supervisor's recovery."""

import dagster as dg

from config.settings import Settings
from dagster_project.defs.platform.assets import services
from dagster_project.defs.platform.checks import services_running_check
from dagster_project.defs.platform.jobs import recover_services_job
from dagster_project.defs.platform.sensors import build_sensor


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[services],
        asset_checks=[services_running_check],
        jobs=[recover_services_job],
        sensors=[build_sensor(settings)],
    )
