"""`make status`'s verdict from a report: healthy (0), something that should run does not (1), stopped (3)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from infra.status import (
    EXIT_HEALTHY,
    EXIT_STOPPED,
    EXIT_UNHEALTHY,
    JobReport,
    ServiceReport,
    StackReport,
    exit_code,
    process_state,
    render,
)


def _service(name: str, *, running: bool = True, should_run: bool = True, **more: Any) -> ServiceReport:
    fields: dict[str, Any] = {
        "name": name,
        "kind": "process",
        "state": "running" if running else more.pop("state", "stopped"),
        "pid": 100 if running else None,
        "should_run": should_run,
        "healthy": running or not should_run,
        "health": "ok" if running else "-",
        "where": "-",
        "uptime_seconds": 3723.0 if running else None,
        "restarts": 0,
        "last_exit": None,
        **more,
    }
    return ServiceReport(**fields)


def _report(services: list[ServiceReport], job_state: str = "running") -> StackReport:
    jobs = [JobReport(name="streaming", state=job_state, should_run=True, healthy=job_state == "running",
                      health="ok (x)" if job_state == "running" else "-")]  # fmt: skip
    anything = any(s.should_run for s in services)
    healthy = all(s.healthy for s in services) and all(j.healthy for j in jobs)
    return StackReport(at=0.0, running=anything, healthy=healthy and anything, services=services, jobs=jobs)


def test_a_healthy_stack_exits_0():
    report = _report([_service("supervisor"), _service("kafka")])
    assert exit_code(report) == EXIT_HEALTHY
    text = render(report)
    assert text.endswith("stack: healthy") and "1h02m" in text


def test_a_process_given_up_on_exits_1_naming_it_and_the_reason():
    exit_ = {"status": "exit code 3", "reason": "OutOfMemoryError (docs/operations.md: Out of memory)", "at": 0}
    error = "flink-taskmanager ended 6 times within 15 minutes (supervisor.restart_budget 5); last: exit code 3"
    gave_up = _service("flink-taskmanager", running=False, state="gave-up", restarts=5, last_exit=exit_, error=error)
    report = _report([_service("supervisor"), gave_up], job_state="restarting")
    assert exit_code(report) == EXIT_UNHEALTHY
    line = next(ln for ln in render(report).splitlines() if ln.startswith("flink-taskmanager"))
    assert "gave-up" in line and "exit code 3 (OutOfMemoryError" in line and f"UNHEALTHY: {error}" in line
    assert "UNHEALTHY: should run, is not running" in render(report)


def test_a_stack_stopped_on_purpose_exits_3():
    report = _report([_service("supervisor", running=False, should_run=False)], job_state="not_running")
    report.jobs[0] = replace(report.jobs[0], should_run=False, healthy=True)
    report = replace(report, running=False, healthy=False)
    assert exit_code(report) == EXIT_STOPPED and render(report).endswith("stack: stopped")


def test_a_process_the_supervisor_has_not_recorded_running_is_starting_not_running():
    """The race `make status` met in the chaos run: the TaskManager killed, its successor spawned (a new PID), the
    supervisor's state file not yet written, the JobManager still counting the killed one: starting, not healthy."""
    killed = {"state": "backoff", "pid": None, "restarts": 0, "last_exit": {"status": "killed by SIGKILL"}}
    assert process_state(4242, killed, supervised=True) == "starting"
    assert process_state(4242, {"state": "starting", "pid": 4242}, supervised=True) == "starting"
    assert process_state(4242, {"state": "running", "pid": 4241}, supervised=True) == "starting"
    assert process_state(4242, {"state": "running", "pid": 4242}, supervised=True) == "running"
    assert process_state(4242, {}, supervised=True) == "running"  # not the supervisor's to keep
    assert process_state(4242, killed, supervised=False) == "running"  # nobody supervises: by its PID
    assert process_state(None, {"state": "running", "pid": 4241}, supervised=True) == "exited"
    assert process_state(None, killed, supervised=True) == "backoff"
    assert process_state(None, killed, supervised=False) == "stopped"
