"""What runs, where, and whether it is healthy: `make status` (also `--json`) and Dagster's `services` asset.

One report: each process of the stack with its state (from the supervisor: running, starting, backoff,
waiting, stopped, failed, gave-up), PID, uptime, restarts, last exit and its health (each service's own
check); the supervisor; external services (an external Kafka, a remote Flink cluster) by their health alone;
each Flink job by its state on the cluster. `healthy` is false as soon as something that should run does not,
or does not answer; `running` is false when nothing should run (the stack is down).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from config.settings import Settings
from flink_jobs import JOBS
from infra import flink_deploy, stack, supervision
from infra.process import ManagedProcess

EXIT_HEALTHY, EXIT_UNHEALTHY, EXIT_STOPPED = 0, 1, 3


@dataclass(frozen=True)
class ServiceReport:
    """One process of the stack (`kind` "process"), the supervisor, or a service that is someone else's
    ("external", judged by its health alone)."""

    name: str
    kind: str
    state: str  # running, starting, backoff, waiting, stopped, exited, failed, gave-up; external
    pid: int | None
    should_run: bool
    healthy: bool
    health: str  # the service's own check, in a few words
    where: str
    uptime_seconds: float | None = None
    restarts: int | None = None  # the supervisor's restarts of it (processes only)
    last_exit: dict[str, Any] | None = None  # status, reason (from its log), at
    error: str | None = None  # why the supervisor failed or gave up on it


@dataclass(frozen=True)
class JobReport:
    name: str
    state: str  # Flink's state, lower case; not_running; unknown (the cluster did not answer)
    should_run: bool
    healthy: bool
    health: str
    job_id: str | None = None


@dataclass(frozen=True)
class StackReport:
    at: float
    running: bool  # something should run (false: the stack is down on purpose)
    healthy: bool
    services: list[ServiceReport] = field(default_factory=list)
    jobs: list[JobReport] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The report as `make status --json` prints it."""
        return asdict(self)

    def service(self, name: str) -> ServiceReport:
        return next(s for s in self.services if s.name == name)


def _probe(check: Callable[[], str]) -> tuple[bool, str]:
    try:
        return True, check()
    except Exception as exc:
        return False, f"{type(exc).__name__}: {str(exc)[:120]}"


def processes(settings: Settings) -> list[ManagedProcess]:
    """The processes `make up` may start here, in start order: the ones the supervisor keeps."""
    return [unit.process for unit in stack.units(settings)]


def exit_text(last: dict[str, Any] | None) -> str:
    """A process's last exit in a few words: its status, and the cause its log named."""
    if not last:
        return "-"
    return str(last["status"]) + (f" ({last['reason']})" if last.get("reason") else "")


def process_state(pid: int | None, record: dict[str, Any], *, supervised: bool) -> str:
    """A process's state from its PID (alive or None) and the supervisor's record of it.

    While a supervisor runs, a live process it has not recorded as running is one it is starting: between the
    spawn and the next write of its state file (or during the health gate) the old process's registration may
    still answer for the new one (a JobManager counts a killed TaskManager until its heartbeat times out), so
    it is "starting", never healthy, until the supervisor says it runs (a process it does not keep, no record:
    by its PID alone)."""
    if pid is None:
        state = str(record.get("state", "stopped")) if supervised else "stopped"
        return "exited" if state == supervision.RUNNING else state  # the supervisor has not looked since
    if supervised and record and (record.get("pid") != pid or record.get("state") == supervision.STARTING):
        return supervision.STARTING
    return "running"


def collect(settings: Settings) -> StackReport:
    now = time.time()
    recorded = supervision.read_state(settings)
    kept = recorded.get("services", {})
    wanted = set(supervision.wanted(settings))
    probes = stack.probes(settings)
    checks = {probe.name: probe for probe in probes if not probe.external}
    services: list[ServiceReport] = []

    supervisor = supervision.process(settings)
    sup_pid = supervisor.pid()
    beat = recorded.get("supervisor", {}).get("heartbeat_at")
    services.append(
        ServiceReport(
            name=supervision.NAME,
            kind="process",
            state="running" if sup_pid else "stopped",
            pid=sup_pid,
            should_run=bool(wanted),
            healthy=bool(sup_pid) or not wanted,
            health=f"ok, heartbeat {now - beat:.0f}s ago" if sup_pid and beat else "-",
            where="-",
        )
    )
    procs = processes(settings)
    pids = {proc.name: proc.pid() for proc in procs}
    # the health checks at once (each waits on a network answer): the report takes as long as the slowest
    with ThreadPoolExecutor(max_workers=len(procs)) as pool:
        answers = {name: pool.submit(_probe, checks[name].check) for name, pid in pids.items() if pid is not None}
    for proc in procs:
        record = kept.get(proc.name, {})
        pid = pids[proc.name]
        should_run = proc.name in wanted
        state = process_state(pid, record, supervised=bool(sup_pid))
        where = checks[proc.name].where
        ok, health = answers[proc.name].result() if pid else (False, "-")
        if state == supervision.STARTING:  # not healthy before the supervisor's own health gate says so
            ok, health = False, "starting"
        started = record.get("started_at") if record.get("pid") == pid else None
        services.append(
            ServiceReport(
                name=proc.name,
                kind="process",
                state=state,
                pid=pid,
                should_run=should_run,
                healthy=(ok if pid else not should_run),
                health=health,
                where=where,
                uptime_seconds=round(now - started, 1) if pid and started else None,
                restarts=int(record.get("restarts", 0)),
                last_exit=record.get("last_exit"),
                error=record.get("error") if state in (supervision.FAILED, supervision.GAVE_UP) else None,
            )
        )
    for probe in probes:
        if probe.external:  # someone else's: by its health alone
            ok, health = _probe(probe.check)
            services.append(_external(probe.name, probe.where, ok, health))
    cluster_up = settings.flink.mode == "remote" or pids.get("flink-jobmanager") is not None
    jobs = [_job(settings, name, cluster_up) for name in JOBS]
    anything = any(s.should_run for s in services) or any(j.should_run for j in jobs)
    healthy = all(s.healthy for s in services) and all(j.healthy for j in jobs)
    return StackReport(at=now, running=anything, healthy=healthy and anything, services=services, jobs=jobs)


def _external(name: str, where: str, ok: bool, health: str) -> ServiceReport:
    return ServiceReport(
        name=name, kind="external", state="external", pid=None, should_run=True, healthy=ok, health=health, where=where
    )


def _job(settings: Settings, name: str, cluster_up: bool) -> JobReport:
    should_run = flink_deploy.should_run(settings, name)
    try:
        found = flink_deploy.find_job(settings, name) if cluster_up else None
    except Exception as exc:
        return JobReport(name=name, state="unknown", should_run=should_run, healthy=False, health=str(exc)[:120])
    state = found["state"] if found else "NOT_RUNNING"
    running = state == "RUNNING"
    return JobReport(
        name=name,
        state=state.lower(),
        job_id=found["jid"] if found else None,
        should_run=should_run,
        healthy=running or not should_run,
        health=f"ok ({found['jid']})" if found and running else "-",
    )


def exit_code(report: StackReport) -> int:
    if not report.running:
        return EXIT_STOPPED
    return EXIT_HEALTHY if report.healthy else EXIT_UNHEALTHY


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def render(report: StackReport) -> str:
    rows = [("SERVICE", "STATE", "UP", "RESTARTS", "LAST EXIT", "WHERE", "HEALTH")]
    for s in report.services:
        health = s.health if s.healthy or not s.should_run else f"UNHEALTHY: {s.error or s.health}"
        rows.append(
            (s.name, s.state, _ago(s.uptime_seconds), "-" if s.restarts is None else str(s.restarts),
             exit_text(s.last_exit),
             s.where, health)
        )  # fmt: skip
    for j in report.jobs:
        health = j.health if j.healthy else "UNHEALTHY: should run, is not running"
        rows.append((f"job {j.name}", j.state, "-", "-", "-", "flink", health))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1] for r in rows]
    verdict = "healthy" if report.healthy else ("stopped" if not report.running else "UNHEALTHY")
    return "\n".join([*lines, "", f"stack: {verdict}"])
