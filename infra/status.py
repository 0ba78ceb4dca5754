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
from typing import Any

from config.settings import Settings
from event_log.topic import topic_end_offsets
from flink_jobs import JOBS
from infra import supervision
from infra.process import ManagedProcess
from infra.services import dagster, demo, flink, flink_jobs, postgres
from infra.supervisor import units

EXIT_HEALTHY, EXIT_UNHEALTHY, EXIT_STOPPED = 0, 1, 3


def _probe(check: Callable[[], str]) -> tuple[bool, str]:
    try:
        return True, check()
    except Exception as exc:
        return False, f"{type(exc).__name__}: {str(exc)[:120]}"


def _answer(check: Callable[[Settings], bool], settings: Settings) -> Callable[[], str]:
    def run() -> str:
        if not check(settings):
            raise RuntimeError("not answering")
        return "ok"

    return run


def _checks(settings: Settings) -> dict[str, tuple[str, Callable[[], str]]]:
    """Per process: where it serves, and its health check (a short text; raises when unhealthy)."""
    d, m = settings.dagster, settings.demo

    def kafka_ok() -> str:
        return f"ok, topic {settings.kafka.topic} end offsets {sum(topic_end_offsets(settings).values())}"

    def flink_ok() -> str:
        overview = flink.overview(settings)
        if not overview.get("taskmanagers"):
            raise RuntimeError("no TaskManager registered")
        text = "ok, {taskmanagers} TaskManager(s), {slots-available} free slot(s), {jobs-running} job(s) running"
        return text.format(**overview)

    code_server, webserver, daemon = dagster.processes(settings)
    app, traffic = demo.processes(settings)
    return {
        "kafka": (settings.kafka.servers, kafka_ok),
        "postgres": (f"{settings.postgres.host}:{settings.postgres.port}", _answer(postgres.is_healthy, settings)),
        "flink-jobmanager": (settings.flink.url, flink_ok),
        "flink-taskmanager": (settings.flink.url, flink_ok),
        code_server.name: (f"{d.host}:{d.code_server_port}", _answer(dagster.code_server_answers, settings)),
        webserver.name: (f"http://{d.host}:{d.port}", _answer(dagster.is_healthy, settings)),
        daemon.name: ("-", lambda: "ok"),
        app.name: (f"http://{m.host}:{m.port}", _answer(demo.is_healthy, settings)),
        traffic.name: ("-", lambda: "ok"),
    }


def processes(settings: Settings) -> list[ManagedProcess]:
    """The processes `make up` may start here, in start order: the ones the supervisor keeps."""
    return [unit.process for unit in units(settings)]


def exit_text(last: dict[str, Any] | None) -> str:
    """A process's last exit in a few words: its status, and the cause its log named."""
    if not last:
        return "-"
    return str(last["status"]) + (f" ({last['reason']})" if last.get("reason") else "")


def collect(settings: Settings) -> dict[str, Any]:
    now = time.time()
    recorded = supervision.read_state(settings)
    kept = recorded.get("services", {})
    wanted = set(supervision.wanted(settings))
    checks = _checks(settings)
    services: list[dict[str, Any]] = []

    supervisor = supervision.process(settings)
    sup_pid = supervisor.pid()
    beat = recorded.get("supervisor", {}).get("heartbeat_at")
    services.append(
        {
            "name": supervision.NAME,
            "kind": "process",
            "state": "running" if sup_pid else "stopped",
            "pid": sup_pid,
            "should_run": bool(wanted),
            "healthy": bool(sup_pid) or not wanted,
            "health": f"ok, heartbeat {now - beat:.0f}s ago" if sup_pid and beat else "-",
            "where": "-",
        }
    )
    procs = processes(settings)
    pids = {proc.name: proc.pid() for proc in procs}
    # the health checks at once (each waits on a network answer): the report takes as long as the slowest
    with ThreadPoolExecutor(max_workers=len(procs)) as pool:
        probes = {name: pool.submit(_probe, checks[name][1]) for name, pid in pids.items() if pid is not None}
    for proc in procs:
        record = kept.get(proc.name, {})
        pid = pids[proc.name]
        should_run = proc.name in wanted
        state = "running" if pid else (record.get("state", "stopped") if sup_pid else "stopped")
        if not pid and state == supervision.RUNNING:
            state = "exited"  # the supervisor has not looked since
        if pid and record.get("pid") == pid and record.get("state") == supervision.STARTING:
            state = supervision.STARTING
        where = checks[proc.name][0]
        ok, health = probes[proc.name].result() if pid else (False, "-")
        if state == supervision.STARTING:  # not healthy before the supervisor's own health gate says so
            ok, health = False, "starting"
        started = record.get("started_at") if record.get("pid") == pid else None
        services.append(
            {
                "name": proc.name,
                "kind": "process",
                "state": state,
                "pid": pid,
                "should_run": should_run,
                "healthy": (ok if pid else not should_run),
                "health": health,
                "where": where,
                "uptime_seconds": round(now - started, 1) if pid and started else None,
                "restarts": int(record.get("restarts", 0)),
                "last_exit": record.get("last_exit"),
                "error": record.get("error") if state in (supervision.FAILED, supervision.GAVE_UP) else None,
            }
        )
    if settings.kafka.mode == "external":
        ok, health = _probe(checks["kafka"][1])
        services.append(_external("kafka", settings.kafka.servers, ok, health))
    if settings.flink.mode == "remote":
        ok, health = _probe(checks["flink-jobmanager"][1])
        services.append(_external("flink", settings.flink.url, ok, health))
    cluster_up = settings.flink.mode == "remote" or pids.get("flink-jobmanager") is not None
    jobs = [_job(settings, name, cluster_up) for name in JOBS]
    anything = any(s["should_run"] for s in services) or any(j["should_run"] for j in jobs)
    healthy = all(s["healthy"] for s in services) and all(j["healthy"] for j in jobs)
    return {"at": now, "running": anything, "healthy": healthy and anything, "services": services, "jobs": jobs}


def _external(name: str, where: str, ok: bool, health: str) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "external",
        "state": "external",
        "pid": None,
        "should_run": True,
        "healthy": ok,
        "health": health,
        "where": where,
    }


def _job(settings: Settings, name: str, cluster_up: bool) -> dict[str, Any]:
    should_run = flink_jobs.should_run(settings, name)
    try:
        found = flink_jobs.find_job(settings, name) if cluster_up else None
    except Exception as exc:
        return {"name": name, "state": "unknown", "should_run": should_run, "healthy": False, "health": str(exc)[:120]}
    state = found["state"] if found else "NOT_RUNNING"
    running = state == "RUNNING"
    return {
        "name": name,
        "state": state.lower(),
        "job_id": found["jid"] if found else None,
        "should_run": should_run,
        "healthy": running or not should_run,
        "health": f"ok ({found['jid']})" if found and running else "-",
    }


def exit_code(report: dict[str, Any]) -> int:
    if not report["running"]:
        return EXIT_STOPPED
    return EXIT_HEALTHY if report["healthy"] else EXIT_UNHEALTHY


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def render(report: dict[str, Any]) -> str:
    rows = [("SERVICE", "STATE", "UP", "RESTARTS", "LAST EXIT", "WHERE", "HEALTH")]
    for s in report["services"]:
        health = s["health"] if s["healthy"] or not s["should_run"] else f"UNHEALTHY: {s.get('error') or s['health']}"
        rows.append(
            (s["name"], s["state"], _ago(s.get("uptime_seconds")), str(s.get("restarts", "-")),
             exit_text(s.get("last_exit")),
             s["where"], health)
        )  # fmt: skip
    for j in report["jobs"]:
        health = j["health"] if j["healthy"] else "UNHEALTHY: should run, is not running"
        rows.append((f"job {j['name']}", j["state"], "-", "-", "-", "flink", health))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1] for r in rows]
    verdict = "healthy" if report["healthy"] else ("stopped" if not report["running"] else "UNHEALTHY")
    return "\n".join([*lines, "", f"stack: {verdict}"])
