"""What `make up`, `make down` and `make status` say to the supervisor, and read from it.

The supervisor (`python -m infra.supervisor`, infra/supervisor.py) is the parent of every process `make up`
starts and starts it again when it ends unexpectedly. They talk through files under var/run/supervisor/:

- `want/<service>`: the service should run. `up` writes it with a new request id and waits until the supervisor
  has answered that request in the state file (running, or failed with the end of the service's log); `down`
  removes it, then stops the service. Both hold the service's lock (`want/<service>.lock`) while they change it,
  and the supervisor holds it while it decides to start the service and records its PID: what `down` stopped
  is never started again behind it.
- `state.json`: what the supervisor sees, written by it alone (atomically): per service its state, PID, start
  time, restarts, the last exit (status and a named reason such as OutOfMemoryError) and the last error; and
  the supervisor's own PID and heartbeat.

The supervisor's configuration is the one `up` read: `up` starts it again (the services keep running, the new
one adopts them) when pipeline.yaml or the PIPELINE_* environment changed since.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from config.logs import get_logger
from config.settings import REPO_ROOT, Settings
from infra.process import ManagedProcess, ServiceError, ensure_port_free

log = get_logger("infra.supervision")

NAME = "supervisor"
# states a service can be in (state.json); `up` waits for one of the last three
STARTING, BACKOFF, WAITING, STOPPED, RUNNING, FAILED, GAVE_UP = (
    "starting", "backoff", "waiting", "stopped", "running", "failed", "gave-up",
)  # fmt: skip
ANSWERED = (RUNNING, FAILED, GAVE_UP)
HEARTBEAT_SECONDS = 5


def home(settings: Settings) -> Path:
    return settings.run_dir / NAME


def want_dir(settings: Settings) -> Path:
    return home(settings) / "want"


def state_file(settings: Settings) -> Path:
    return home(settings) / "state.json"


def settings_digest(settings: Settings) -> str:
    """Tells the configuration a supervisor runs with from another one."""
    return hashlib.sha256(settings.model_dump_json().encode()).hexdigest()[:16]


@contextlib.contextmanager
def service_lock(settings: Settings, name: str) -> Iterator[None]:
    path = want_dir(settings) / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def request_of(settings: Settings, name: str) -> str | None:
    """The id of the last start request of a service that should run; None when it should not."""
    try:
        return str(json.loads((want_dir(settings) / name).read_text())["request"])
    except (FileNotFoundError, ValueError, KeyError):
        return None


def wanted(settings: Settings) -> list[str]:
    """The services that should run."""
    folder = want_dir(settings)
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.exists() else []


def want(settings: Settings, name: str) -> str:
    """Ask for the service to run; the request's id."""
    request = uuid.uuid4().hex[:12]
    with service_lock(settings, name):
        path = want_dir(settings) / name
        path.write_text(json.dumps({"request": request, "at": time.time()}))
    return request


def unwant(settings: Settings, name: str) -> None:
    with service_lock(settings, name):
        (want_dir(settings) / name).unlink(missing_ok=True)


def read_state(settings: Settings) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(state_file(settings).read_text())
        return data
    except (FileNotFoundError, ValueError):
        return {}


def write_state(settings: Settings, state: dict[str, Any]) -> None:
    path = state_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(f".{os.getpid()}.tmp")
    scratch.write_text(json.dumps(state, indent=1, sort_keys=True))
    scratch.replace(path)


def process(settings: Settings) -> ManagedProcess:
    """The supervisor itself; healthy once it has published its state."""
    proc = ManagedProcess(
        name=NAME,
        argv=[sys.executable, "-m", "infra.supervisor"],
        log_file=settings.log_dir / f"{NAME}.log",
        run_dir=settings.run_dir,
        env={"PYTHONUNBUFFERED": "1"},
        cwd=REPO_ROOT,
        start_timeout=60,
        stop_timeout=15,
    )
    proc.health = lambda: read_state(settings).get("supervisor", {}).get("pid") == proc.pid()
    return proc


def ensure_supervisor(settings: Settings) -> int:
    """Start the supervisor unless it runs with this configuration (one with another is replaced; the services
    keep running and the new one adopts them)."""
    proc = process(settings)
    running = proc.pid()
    if running is not None:
        if read_state(settings).get("supervisor", {}).get("settings") == settings_digest(settings):
            return running
        log.info("supervisor_replaced", reason="the configuration changed", pid=running)
        proc.stop()
    return proc.start()


def run(settings: Settings, proc: ManagedProcess) -> None:
    """`up` for one service: ask the supervisor to run it and wait for its answer (already running, started and
    healthy, or the error with the end of its log)."""
    ensure_supervisor(settings)
    if not proc.is_running():
        for spec in proc.ports:  # a busy port fails here, naming its key, before anything is asked
            ensure_port_free(spec)
    request = want(settings, proc.name)
    await_answer(settings, proc.name, request, timeout=proc.start_timeout + 60, supervisor=process(settings))


def await_answer(
    settings: Settings, name: str, request: str, *, timeout: float, supervisor: ManagedProcess | None = None
) -> dict[str, Any]:
    """Wait until the supervisor answered the request: the service's entry in the state file, when it runs;
    ServiceError with the supervisor's error otherwise (or when `supervisor` ended meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        entry: dict[str, Any] = read_state(settings).get("services", {}).get(name, {})
        if entry.get("request") == request and entry.get("state") in ANSWERED:
            if entry["state"] != RUNNING:
                raise ServiceError(str(entry.get("error") or f"{name}: {entry['state']}"))
            return entry
        if supervisor is not None and not supervisor.is_running():
            raise ServiceError(f"the supervisor ended while starting {name}; see {supervisor.log_file}")
        if time.monotonic() > deadline:
            raise ServiceError(f"the supervisor did not start {name} within {timeout:.0f}s; see var/log/{NAME}.log")
        time.sleep(0.2)


def stop(settings: Settings, proc: ManagedProcess) -> bool:
    """`down` for one service: no longer wanted (so not restarted), then stopped."""
    unwant(settings, proc.name)
    return proc.stop()


def stop_supervisor(settings: Settings) -> None:
    """Once nothing should run: the supervisor ends too (the services it ran are already stopped)."""
    if not wanted(settings):
        process(settings).stop()
