"""Each job's state on this machine (var/flink/jobs/<name>/state.json: its id, code version, last savepoint,
whether it should run, its recoveries) and its lock, which deploy, recover and stop take so they never interleave."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from config.settings import Settings
from infra.services import flink


def job_dir(settings: Settings, name: str) -> Path:
    return flink.flink_home(settings) / "jobs" / name


def read_state(settings: Settings, name: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((job_dir(settings, name) / "state.json").read_text())
        return data
    except (FileNotFoundError, ValueError):
        return {}


def write_state(settings: Settings, name: str, **updates: Any) -> None:
    state = read_state(settings, name) | updates
    path = job_dir(settings, name) / "state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2, sort_keys=True))


@contextmanager
def job_lock(settings: Settings, name: str) -> Iterator[None]:
    """Hold the job's lock (a file lock beside its state) while deploying or stopping it."""
    path = job_dir(settings, name) / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def busy(settings: Settings, name: str) -> bool:
    """Whether a deploy or stop of the job holds its lock right now (in a process on this machine)."""
    path = job_dir(settings, name) / ".lock"
    if not path.exists():
        return False
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def should_run(settings: Settings, name: str) -> bool:
    """Whether the job was deployed and not stopped on purpose since (older state files: deployed = should run)."""
    state = read_state(settings, name)
    return bool(state.get("desired", "running" if state.get("job_id") else "stopped") == "running")
