"""Dagster: the webserver (UI at dagster.host:dagster.port) and the daemon (schedules, sensors, backfills).

DAGSTER_HOME is var/dagster with telemetry off. Both processes load the code location of workspace.yaml;
the pipeline's configuration reaches them through the same pipeline.yaml / PIPELINE_* environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from infra.config import REPO_ROOT, Settings
from infra.process import ManagedProcess, PortSpec, ServiceError

DAGSTER_YAML = """\
# Written by infra/services/dagster.py; edits are overwritten.
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 4     # each run is a process; the embedded default has 2 cores
  pools:
    default_limit: 1
    granularity: run           # a run waits in the queue while another run holds one of its pools
"""
# The pools of the code location's assets, one run at a time each: `flink_replay` (a Kappa replay takes the
# cluster's free slots), `duckdb` (dbt runs share one DuckDB file, which takes one writer). Set before the first
# run: the default limit reaches a pool only once the queue has seen it, after it let the first runs through.
POOLS = {"flink_replay": 1, "duckdb": 1}


def dagster_home(settings: Settings) -> Path:
    return settings.var_dir / "dagster"


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def is_healthy(settings: Settings) -> bool:
    url = f"http://{settings.dagster.host}:{settings.dagster.port}/server_info"
    return httpx.get(url, timeout=3).status_code == 200


def processes(settings: Settings) -> list[ManagedProcess]:
    home = dagster_home(settings)
    env = {"DAGSTER_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    workspace = str(REPO_ROOT / "workspace.yaml")
    webserver = ManagedProcess(
        name="dagster-webserver",
        argv=[
            _bin("dagster-webserver"),
            "-h",
            settings.dagster.host,
            "-p",
            str(settings.dagster.port),
            "-w",
            workspace,
        ],
        log_file=settings.log_dir / "dagster-webserver.log",
        run_dir=settings.run_dir,
        ports=[PortSpec(settings.dagster.host, settings.dagster.port, "dagster.port")],
        env=env,
        cwd=REPO_ROOT,
        health=lambda: is_healthy(settings),
        start_timeout=180,
    )
    daemon = ManagedProcess(
        name="dagster-daemon",
        argv=[_bin("dagster-daemon"), "run", "-w", workspace],
        log_file=settings.log_dir / "dagster-daemon.log",
        run_dir=settings.run_dir,
        env=env,
        cwd=REPO_ROOT,
    )
    return [webserver, daemon]


def start(settings: Settings) -> None:
    home = dagster_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    for pool, limit in POOLS.items():
        argv = [_bin("dagster"), "instance", "concurrency", "set", pool, str(limit)]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        if done.returncode != 0:
            raise ServiceError(f"setting Dagster's pool {pool} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    for proc in processes(settings):
        proc.start()


def stop(settings: Settings) -> None:
    for proc in reversed(processes(settings)):
        proc.stop()
