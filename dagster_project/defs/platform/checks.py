"""`services_running`: every process of the stack that should run runs and answers, the supervisor too (the
`services_on_failure` sensor evaluates it without a run)."""

import dagster as dg

from dagster_project.defs.keys import SERVICES
from dagster_project.defs.verdicts import Verdict
from dagster_project.resources import StackReport, StackResource

SERVICES_RUNNING = "services_running"


def services_running(report: StackReport) -> Verdict:
    """Every process that should run runs and answers; the supervisor too (`StackResource.report`)."""
    down = [s for s in report.services if not s.healthy]
    if not down:
        return Verdict(SERVICES, SERVICES_RUNNING, True, "every process that should run runs and answers")
    parts = []
    for s in down:
        what = s.error or (f"{s.state}: {s.health}" if s.pid else s.state)
        parts.append(f"{s.name} ({what})")
    return Verdict(
        SERVICES,
        SERVICES_RUNNING,
        False,
        "not running or not answering: " + "; ".join(parts),
        {"unhealthy": ", ".join(s.name for s in down)},
    )


@dg.asset_check(asset=SERVICES, name=SERVICES_RUNNING, description="every process that should run runs")
def services_running_check(stack: StackResource) -> dg.AssetCheckResult:
    return services_running(stack.report()).result()
