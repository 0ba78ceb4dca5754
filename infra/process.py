"""Start, stop and watch the platform's long-running processes.

Each service runs in its own session (so it and every child it spawns can be stopped together), with its
output in `var/log/<name>.log` and its PID in `var/run/<name>.pid`. Starting a service that already runs
does nothing; a busy port fails with the port and the configuration key that moves it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from config.logs import get_logger
from config.settings import env_var

log = get_logger("infra.process")


# glibc gives each thread that allocates at once an arena of its own (up to 8 per core), and memory freed in one
# is not reused by another: the JVMs' native allocations (RocksDB, the JIT, the embedded Python of the streaming
# job) and the Python servers' thread pools hold more resident memory that way. Two arenas per process: after 2
# million events at 5,000/s the services held 2,755 MiB instead of 2,905 (the TaskManager 1,061 instead of 1,175),
# the job as fast. An environment that sets MALLOC_ARENA_MAX itself keeps its own value (docs/benchmarks.md)
MALLOC_ENV = {"MALLOC_ARENA_MAX": "2"}


class ServiceError(RuntimeError):
    """A service could not be started, became unhealthy, or cannot be reached."""


@dataclass(frozen=True)
class PortSpec:
    host: str
    port: int
    key: str  # the configuration key that moves this port, e.g. "kafka.port"


@dataclass
class ManagedProcess:
    name: str
    argv: Sequence[str]
    log_file: Path
    run_dir: Path
    ports: Sequence[PortSpec] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    health: Callable[[], bool] | None = None
    # a line the process logs once it is ready, looked for in what it logged since its start: tells this start
    # from an earlier one where the health check alone cannot (a JobManager still lists a TaskManager that died)
    ready_line: str | None = None
    start_timeout: float = 120.0
    stop_timeout: float = 30.0

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    def pid(self) -> int | None:
        """The PID of the running service, or None (a stale PID file is removed)."""
        try:
            record = json.loads(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        pid = int(record["pid"])
        if _alive(pid) and _started_at(pid) == record.get("start_ticks"):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(self) -> int:
        """Start the service and wait until it is healthy (or fail with the end of its log); a running service is
        left alone. The supervisor (infra/supervisor.py) starts the platform's services this way."""
        running = self.pid()
        if running is not None:
            log.info("already_running", service=self.name, pid=running)
            return running
        proc, offset = self.spawn()
        self.await_healthy(proc, offset)
        return proc.pid

    def spawn(self) -> tuple[subprocess.Popen[bytes], int]:
        """Start the process (ports checked first) and record its PID; do not wait. Returns the process and the
        size its log had before, where `await_healthy` looks for `ready_line`."""
        for spec in self.ports:
            ensure_port_free(spec)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        env = {**MALLOC_ENV, **os.environ, **self.env}
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with open(self.log_file, "ab") as out:
            proc = subprocess.Popen(
                list(self.argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                env=env,
                start_new_session=True,
                preexec_fn=_reset_signals,
            )
        record = {"pid": proc.pid, "start_ticks": _started_at(proc.pid), "argv": list(self.argv)}
        self.pid_file.write_text(json.dumps(record))
        log.info("starting", service=self.name, pid=proc.pid, log=str(self.log_file))
        return proc, offset

    def await_healthy(self, proc: subprocess.Popen[bytes], log_offset: int = 0) -> None:
        """Wait until the health check passes and `ready_line` is in the log written since `log_offset`; on
        timeout or exit, stop the process and fail with the last lines of its log."""
        checks = [c for c in (self.health, self._ready_line_check(log_offset)) if c is not None]
        if checks:
            try:
                wait_until(
                    lambda: all(check() for check in checks),
                    timeout=self.start_timeout,
                    what=f"{self.name} to become healthy",
                    alive=lambda: proc.poll() is None,
                )
            except ServiceError as exc:
                tail = _tail(self.log_file)
                self.stop()
                raise ServiceError(
                    f"{self.name} did not become healthy within {self.start_timeout:.0f}s ({exc}); "
                    f"last lines of {self.log_file}:\n{tail}"
                ) from None
        log.info("started", service=self.name, pid=proc.pid)

    def _ready_line_check(self, offset: int) -> Callable[[], bool] | None:
        if self.ready_line is None:
            return None
        marker = self.ready_line.encode()

        def logged() -> bool:
            with open(self.log_file, "rb") as handle:
                handle.seek(offset)
                return marker in handle.read()

        return logged

    def stop(self) -> bool:
        """Stop the whole process group: SIGTERM, then SIGKILL after `stop_timeout`."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        self.end_group(pid)
        self.pid_file.unlink(missing_ok=True)
        log.info("stopped", service=self.name, pid=pid)
        return True

    def end_group(self, pgid: int) -> None:
        """End what is left of the process group `pgid`: SIGTERM, then SIGKILL after `stop_timeout` (also what
        a service whose first process died left behind, before it is started again)."""
        if not _group_alive(pgid):
            return
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.2)
        if _group_alive(pgid):
            log.warning("kill", service=self.name, pid=pgid, reason="did not stop after SIGTERM")
            _signal_group(pgid, signal.SIGKILL)
            end = time.monotonic() + 10
            while time.monotonic() < end and _group_alive(pgid):
                time.sleep(0.1)


def _reset_signals() -> None:
    # A service started from a shell script or `make` may inherit ignored SIGINT/SIGTERM (e.g. `dagster`
    # then never stops). Every service gets the default handlers back.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _started_at(pid: int) -> int | None:
    """Process start time in clock ticks: tells a live service from a reused PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _group_alive(pgid: int) -> bool:
    return bool(_group_members(pgid))


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def ensure_port_free(spec: PortSpec) -> None:
    if port_in_use(spec.host, spec.port):
        env = env_var(spec.key)
        raise ServiceError(
            f"port {spec.port} on {spec.host} is already in use; move it with `{spec.key}` in "
            f"pipeline.yaml or {env}=<port>"
        )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.5,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll `check` until it is true; fail after `timeout` or as soon as `alive` says the process died."""
    deadline = time.monotonic() + timeout
    next_progress = time.monotonic() + 15
    while True:
        with contextlib.suppress(Exception):
            if check():
                return
        if alive is not None and not alive():
            raise ServiceError(f"process exited while waiting for {what}")
        now = time.monotonic()
        if now > deadline:
            raise ServiceError(f"timed out after {timeout:.0f}s waiting for {what}")
        if now > next_progress:
            log.info("waiting", what=what, remaining_s=round(deadline - now))
            next_progress = now + 15
        time.sleep(interval)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def describe_exit(returncode: int | None) -> str:
    """How a process ended, from its return code (negative: the signal that ended it)."""
    if returncode is None:
        return "unknown"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"
