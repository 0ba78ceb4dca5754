"""`services_on_failure`: the sensor that observes the stack's processes, evaluates `services_running` and
requests `recover_services_job` when the supervisor is gone."""

import json
import time

import dagster as dg

from config.settings import Settings
from dagster_project.defs.keys import RECOVERY_TAG, SERVICES
from dagster_project.defs.observing import RETRY_RECOVERY_AFTER_SECONDS, due, read_cursor, recovery_in_flight
from dagster_project.defs.platform.assets import services_fingerprint, services_metadata
from dagster_project.defs.platform.checks import services_running
from dagster_project.defs.platform.jobs import recover_services_job
from dagster_project.resources import SUPERVISOR, StackResource


def build_sensor(settings: Settings) -> dg.SensorDefinition:
    """Every `dagster.health_interval_seconds`: observes `platform/services` when a process changed, at least
    every 5 minutes; evaluates `services_running`; and when the supervisor is gone while services should run,
    requests a run of `recover_services_job`, which starts it again (it adopts the running services and brings
    back what ended). The supervisor keeps the Dagster daemon alive, and the daemon runs this sensor: each
    brings the other back."""

    @dg.sensor(
        name="services_on_failure",
        minimum_interval_seconds=settings.dagster.health_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        jobs=[recover_services_job],
        description="Records the stack's processes (state, restarts, last exit, uptime); fails `services_running` "
        "while something that should run does not; starts the supervisor again when it is gone.",
    )
    def services_on_failure(context: dg.SensorEvaluationContext, stack: StackResource) -> dg.SensorResult:
        cursor, now = read_cursor(context), time.time()
        report = stack.report()
        events: list[dg.AssetObservation | dg.AssetCheckEvaluation] = []
        requests: list[dg.RunRequest] = []
        verdict = services_running(report)
        if not verdict.passed:
            context.log.warning(verdict.description)
        if due(cursor.setdefault("check", {}), [verdict.passed, verdict.description], now, min_gap=0):
            events.append(verdict.evaluation())
        if due(cursor.setdefault("observed", {}), services_fingerprint(report), now):
            events.append(dg.AssetObservation(asset_key=SERVICES, metadata=services_metadata(report)))
        supervisor = report.service(SUPERVISOR)
        waited = now - cursor.get("requested", 0) >= RETRY_RECOVERY_AFTER_SECONDS
        if not supervisor.healthy and waited and not recovery_in_flight(context, SUPERVISOR):
            context.log.warning("the supervisor is gone while services should run: starting it again")
            requests.append(dg.RunRequest(job_name=recover_services_job.name, tags={RECOVERY_TAG: SUPERVISOR}))
            cursor["requested"] = now
        return dg.SensorResult(run_requests=requests, asset_events=events, cursor=json.dumps(cursor))

    return services_on_failure
