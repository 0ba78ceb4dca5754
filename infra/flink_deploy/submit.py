"""`flink run`: a job's entry submitted to the cluster (embedded or remote) with its configuration and its code,
detached for the stream, attached for a Kappa replay."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from typing import Any

from config.logs import get_logger
from config.settings import REPO_ROOT, Settings
from flink_jobs import JOBS
from infra.flink_deploy.cluster import find_job
from infra.flink_deploy.package import job_config, package_zip, spec
from infra.flink_deploy.state import job_dir
from infra.install import flink_python, pyflink_dir
from infra.process import ServiceError
from infra.services import flink

log = get_logger("infra.flink_deploy")


def flink_run(
    settings: Settings,
    name: str,
    config: dict[str, Any],
    config_name: str,
    *,
    detached: bool,
    timeout: float,
    restore_from: str | None = None,
) -> str:
    """`flink run` the job's entry with `config` against the cluster; the job id it printed."""
    job = spec(name)
    config_path = job_dir(settings, name) / config_name
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.touch(mode=0o600)  # it carries the catalog database's credentials
    config_path.chmod(0o600)
    config_path.write_text(json.dumps(config, indent=2))
    python = str(flink_python(settings))
    argv = [
        "bash",
        str(pyflink_dir(settings) / "bin" / "flink"),
        "run",
        *(["--detached"] if detached else []),
        *flink.cli_target(settings),
        "-py",
        str(job.entry),
        "-pyclientexec",
        python,
        "-pyexec",
        python,
        "-pyfs",  # the Python workers on the TaskManagers import flink_jobs from it
        str(package_zip(settings, name)),
    ]
    if restore_from:
        argv += ["--fromSavepoint", restore_from]
    argv += ["--config", str(config_path)]
    env = {**os.environ, **flink.flink_env(settings), "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    match = re.search(r"JobID ([0-9a-f]{32})", proc.stdout + proc.stderr)
    if proc.returncode != 0 or not match:
        # keep the Python traceback and the causes; drop Java stack frames
        lines = (proc.stdout + proc.stderr).splitlines()
        output = "\n".join(ln for ln in lines if not ln.lstrip().startswith(("at ", "... ")))[-4000:]
        raise ServiceError(f"Flink job {name} ({config_name}) failed (exit {proc.returncode}):\n{output}")
    return match.group(1)


def submit(settings: Settings, name: str, restore_from: str | None) -> str:
    log.info("submitting", job=name, restore_from=restore_from or "none")
    return flink_run(
        settings, name, job_config(settings, name), "config.json", detached=True,
        timeout=settings.flink.submit_timeout_seconds, restore_from=restore_from,
    )  # fmt: skip


REPLAYABLE = tuple(name for name, job in JOBS.items() if job.replayable)


def replay(settings: Settings, name: str, start_ms: int, end_ms: int, timeout: float = 3600) -> str:
    """Kappa replay: run the job's SQL in batch mode on the cluster over raw.http_events of [start_ms, end_ms)
    and overwrite that range's day partitions of its speed tables; wait for the end. Returns the job id."""
    if name not in REPLAYABLE:
        raise ServiceError(f"Flink job {name!r} has no replay; replayable: {', '.join(REPLAYABLE)}")
    if end_ms <= start_ms:
        raise ServiceError(f"replay range is empty: start {start_ms} >= end {end_ms}")
    # the stream still has windows of today open: their replayed rows would be written again when they close
    today_ms = int(time.time() // 86_400 * 86_400 * 1000)
    running = find_job(settings, name)
    if end_ms > today_ms and running is not None and running["state"] == "RUNNING":
        raise ServiceError(
            f"replay of {name} reaches into today (UTC), which its running stream is still writing: its open "
            f"windows would get a second row. Replay closed days, or stop the job first "
            f"(python -m infra down jobs) and deploy it again after the replay"
        )
    config = job_config(settings, name) | {
        "job_name": f"{name}-replay",
        "source": {"kind": "iceberg", "replay_start_ms": start_ms, "replay_end_ms": end_ms},
    }
    started = time.monotonic()
    log.info("replay_started", job=name, start_ms=start_ms, end_ms=end_ms)
    job_id = flink_run(settings, name, config, "replay.json", detached=False, timeout=timeout)
    log.info("replay_done", job=name, job_id=job_id, seconds=round(time.monotonic() - started, 1))
    return job_id
