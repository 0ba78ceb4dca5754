"""The supervisor: keeps every process `make up` starts alive. `python -m infra.supervisor`, started by `make up`
before anything else (infra/supervision.py says how `up`, `down` and `status` talk to it).

It is the parent of the services it starts, so it sees each exit and its status. A service that ends while it
should run is started again the way `up` started it: health-gated (its health check, and its ready line in its
log since that start), after a backoff that grows with each restart (supervisor.initial_backoff_seconds, times
supervisor.backoff_multiplier, up to supervisor.max_backoff_seconds; back to the initial wait once it ran
supervisor.reset_after_seconds), and only after what it needs is running again (a TaskManager after its
JobManager; the Dagster webserver and daemon after the code server). A service that ends more than
supervisor.restart_budget times within supervisor.budget_minutes is given up on: an `error` line naming it, its
last exit and the reason found in its log (OutOfMemoryError), `make status` exits non-zero, Dagster's
`services` check fails, and only the next `make up` starts it again.

A JobManager that was started again has no jobs (standalone Flink keeps none across a restart): once a
TaskManager registered with it, the supervisor starts each job that should run from its latest retained
checkpoint, as Dagster's recovery does, and the job's state records it (`last_recovery`).

When the supervisor itself ends, the services run on; a new supervisor (the next `make up`, or Dagster's
`services_on_failure` sensor) adopts them from their PID files. Their exit status is then unknown to it (it is
not their parent) until it has started them itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from config import logs
from config.logs import get_logger
from config.settings import Settings, load_settings
from infra import supervision
from infra.process import ServiceError, describe_exit
from infra.services.base import Unit
from infra.stack import units

log = get_logger("infra.supervisor")

# what a service's log says when it died of it: named in its last exit and in the alarm
_REASONS = {
    b"java.lang.OutOfMemoryError": "OutOfMemoryError (docs/operations.md: Out of memory)",
    b"No space left on device": "no space left on device",
}
_LOG_SCAN_BYTES = 256 * 1024


def _started_epoch(pid: int) -> float | None:
    """When a process started (seconds since the epoch), from /proc: the uptime of an adopted service."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime")
        )
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _reason_in_log(path: Path, since: int) -> str | None:
    """A cause of death the service's log names, written since its start."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(since, size - _LOG_SCAN_BYTES))
            text = handle.read()
    except OSError:
        return None
    return next((reason for marker, reason in _REASONS.items() if marker in text), None)


class Keeper(threading.Thread):
    """Keeps one service alive: one thread each, so one service's start (up to its start timeout) holds up no
    other."""

    def __init__(self, supervisor: Supervisor, unit: Unit, record: dict[str, Any]) -> None:
        super().__init__(name=f"keeper-{unit.process.name}", daemon=True)
        self.supervisor = supervisor
        self.unit = unit
        self.proc = unit.process
        self.name_ = unit.process.name
        config = supervisor.settings.supervisor
        self.config = config
        self.state: str = supervision.STOPPED
        self.child: subprocess.Popen[bytes] | None = None
        self.log_offset = 0
        self.started_at: float | None = None
        # what the record of an earlier supervisor says (restarts survive a restart of the supervisor)
        self.restarts = int(record.get("restarts", 0))
        self.recent: list[float] = [float(t) for t in record.get("recent_restarts", [])]
        self.last_exit: dict[str, Any] | None = record.get("last_exit")
        self.handled: str | None = record.get("request")
        self.error: str | None = record.get("error")
        self.restarted_at: float | None = record.get("restarted_at")
        self.delay = config.initial_backoff_seconds
        self.backoff_until = 0.0
        if record.get("state") in (supervision.FAILED, supervision.GAVE_UP):
            self.state = str(record["state"])
        # what an earlier supervisor ran: if it ended while none watched, the first look records that it ended
        self.pid: int | None = record.get("pid") if record.get("state") == supervision.RUNNING else None

    # ---- what the state file shows ----
    def snapshot(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "pid": self.pid,
            "started_at": self.started_at,
            "restarts": self.restarts,
            "restarted_at": self.restarted_at,
            "recent_restarts": self.recent,
            "last_exit": self.last_exit,
            "request": self.handled,
            "error": self.error,
            "backoff_until": self.backoff_until if self.state == supervision.BACKOFF else None,
            "child": self.child is not None,
        }

    def run(self) -> None:
        while not self.supervisor.stopping.is_set():
            try:
                self.step()
            except Exception as exc:  # a keeper never dies of one bad look; it looks again
                log.error("keeper_failed", service=self.name_, error=f"{type(exc).__name__}: {str(exc)[:300]}")
            self.supervisor.stopping.wait(self.config.poll_interval_seconds)

    def step(self) -> None:
        settings = self.supervisor.settings
        request = supervision.request_of(settings, self.name_)
        pid = self.proc.pid()
        if pid is not None:
            self._running(pid, request)
            return
        if self.pid is not None:
            if request is None:
                self._stopped()  # by `down`
            else:
                self._ended()
        if request is None:
            self.state, self.error = supervision.STOPPED, None
            return
        now = time.time()
        if request != self.handled:  # a start asked by `up`: now, with a fresh budget; its outcome goes to `up`
            self.recent, self.delay, self.backoff_until = [], self.config.initial_backoff_seconds, 0.0
            self._start(request, first=True)
            return
        if self.state in (supervision.FAILED, supervision.GAVE_UP):
            return  # until the next `up`
        self.recent = [t for t in self.recent if now - t < self.config.budget_minutes * 60]
        if len(self.recent) >= self.config.restart_budget:
            self._give_up()
            return
        if now < self.backoff_until:
            self.state = supervision.BACKOFF
            return
        blocked = [name for name in self.unit.after if self.supervisor.state_of(name) != supervision.RUNNING]
        if blocked:
            self.state = supervision.WAITING
            return
        self.recent.append(now)
        self.restarts += 1
        log.warning("restarting", service=self.name_, restart=self.restarts, last_exit=self._exit_text())
        if not self._start(request, first=False):
            return
        self.restarted_at = time.time()
        if self.unit.on_restart is not None:
            try:
                self.unit.on_restart()
            except Exception as exc:
                log.error("after_restart_failed", service=self.name_, error=f"{type(exc).__name__}: {str(exc)[:500]}")

    def _running(self, pid: int, request: str | None) -> None:
        if pid != self.pid:  # started by an earlier supervisor or by hand: adopted
            self.pid, self.child = pid, None
            self.started_at = _started_epoch(pid)
            self.state = supervision.RUNNING
            log.info("adopted", service=self.name_, pid=pid)
        if request is not None and request != self.handled:
            self.handled, self.error = request, None  # `up` asked for what runs already
            self.state = supervision.RUNNING
        if self.started_at and time.time() - self.started_at >= self.config.reset_after_seconds:
            self.delay = self.config.initial_backoff_seconds

    def _stopped(self) -> None:
        if self.child is not None:
            self.child.wait()
        log.info("stopped", service=self.name_, pid=self.pid)
        self.pid, self.child, self.started_at = None, None, None

    def _ended(self) -> None:
        """The service's process is gone: how it ended, what its log names, and the rest of its group."""
        assert self.pid is not None
        code = self.child.wait() if self.child is not None and self.child.pid == self.pid else None
        unknown = "ended (exit status unknown: adopted)" if self.child is None else None
        exit_ = self._record_exit(code, unknown)
        log.warning("exited", service=self.name_, pid=self.pid, status=exit_["status"],
                    reason=exit_["reason"] or "-", uptime_s=exit_["uptime_seconds"] or "-")  # fmt: skip
        self.proc.end_group(self.pid)  # what it started lives on in its session: it goes too
        self.proc.pid_file.unlink(missing_ok=True)
        self.pid, self.child, self.started_at = None, None, None
        self._back_off(exit_["at"])

    def _record_exit(self, code: int | None, unknown: str | None) -> dict[str, Any]:
        """How the process of this start ended (`unknown`: the status when there is no code), and the cause its
        log names since the start."""
        now = time.time()
        self.last_exit = {
            "status": unknown if unknown is not None else describe_exit(code),
            "code": code,
            "at": now,
            "reason": _reason_in_log(self.proc.log_file, self.log_offset),
            "uptime_seconds": round(now - self.started_at, 1) if self.started_at else None,
        }
        return self.last_exit

    def _back_off(self, now: float) -> None:
        self.backoff_until = now + self.delay
        self.delay = min(self.delay * self.config.backoff_multiplier, self.config.max_backoff_seconds)

    def _start(self, request: str, *, first: bool) -> bool:
        settings = self.supervisor.settings
        self.state = supervision.STARTING
        with supervision.service_lock(settings, self.name_):
            if supervision.request_of(settings, self.name_) != request:
                return False  # `down` (or another `up`) meanwhile: look again
            try:
                child, offset = self.proc.spawn()
            except ServiceError as exc:
                self._failed(request, str(exc), first=first)
                return False
        self.child, self.pid, self.log_offset, self.started_at = child, child.pid, offset, time.time()
        try:
            self.proc.await_healthy(child, offset)
        except ServiceError as exc:
            code = child.poll()
            self._record_exit(code, None if code is not None else "stopped: not healthy in time")
            self.pid, self.child, self.started_at = None, None, None
            if supervision.request_of(settings, self.name_) is None:
                self.handled, self.state = request, supervision.STOPPED  # stopped by `down` while starting
                return False
            self._failed(request, str(exc), first=first)
            return False
        self.handled, self.state, self.error = request, supervision.RUNNING, None
        log.info("running", service=self.name_, pid=child.pid, restarts=self.restarts)
        return True

    def _failed(self, request: str, error: str, *, first: bool) -> None:
        self.handled = request
        if first:  # `up` reports it (with the end of the log); not retried until the next `up`
            self.state, self.error = supervision.FAILED, error
            log.error("start_failed", service=self.name_, error=error[:300])
        else:
            self.state, self.error = supervision.BACKOFF, error
            log.warning("restart_failed", service=self.name_, error=error[:300])
            self._back_off(time.time())

    def _give_up(self) -> None:
        minutes = self.config.budget_minutes
        self.state = supervision.GAVE_UP
        self.error = (
            f"{self.name_} ended {len(self.recent) + 1} times within {minutes} minutes "
            f"(supervisor.restart_budget {self.config.restart_budget}); last: {self._exit_text()}. Not started "
            f"again until `make up`; its log: {self.proc.log_file}"
        )
        log.error("gave_up", service=self.name_, error=self.error)

    def _exit_text(self) -> str:
        if not self.last_exit:
            return "-"
        reason = self.last_exit.get("reason")
        return str(self.last_exit["status"]) + (f", {reason}" if reason else "")


class Supervisor:
    def __init__(self, settings: Settings, kept: list[Unit] | None = None) -> None:
        self.settings = settings
        self.stopping = threading.Event()
        previous = supervision.read_state(settings).get("services", {})
        kept = units(settings) if kept is None else kept
        self.keepers = {u.process.name: Keeper(self, u, previous.get(u.process.name, {})) for u in kept}
        self.started_at = time.time()

    def state_of(self, name: str) -> str:
        keeper = self.keepers.get(name)
        return keeper.state if keeper else supervision.RUNNING  # not ours to keep: taken as there

    def snapshot(self) -> dict[str, Any]:
        return {
            "supervisor": {
                "pid": os.getpid(),
                "started_at": self.started_at,
                "settings": supervision.settings_digest(self.settings),
            },
            "services": {name: keeper.snapshot() for name, keeper in self.keepers.items()},
        }

    def run(self) -> None:
        for keeper in self.keepers.values():
            keeper.start()
        published: dict[str, Any] = {}
        last_beat = 0.0
        while not self.stopping.is_set():
            current = self.snapshot()
            now = time.time()
            if current != published or now - last_beat >= supervision.HEARTBEAT_SECONDS:
                current["supervisor"]["heartbeat_at"] = now
                supervision.write_state(self.settings, current)
                current["supervisor"].pop("heartbeat_at")
                published, last_beat = current, now
            self.stopping.wait(min(0.5, self.settings.supervisor.poll_interval_seconds))
        for keeper in self.keepers.values():  # each ends after its current look (a start under way: its timeout)
            keeper.join(timeout=5)
        log.info("supervisor_stopped", pid=os.getpid())


def main() -> int:
    logs.configure()
    settings = load_settings()
    supervisor = Supervisor(settings)

    def stop(signum: int, _frame: object) -> None:
        supervisor.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("supervisor_started", pid=os.getpid(), services=",".join(supervisor.keepers))
    supervisor.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
