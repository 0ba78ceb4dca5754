"""`recover_services_job`: starts the stack's supervisor again, requested by `services_on_failure`."""

import dagster as dg

from dagster_project.resources import StackResource


@dg.op(description="Start the supervisor again: it adopts the running services and brings back the ones that ended.")
def start_supervisor(context: dg.OpExecutionContext, stack: StackResource) -> None:
    pid = stack.start_supervisor()
    context.log.info(f"supervisor running (pid {pid})")


@dg.job(description="Recovery of the stack's supervisor, requested by `services_on_failure`.")
def recover_services_job() -> None:
    start_supervisor()
