"""Dagster: one code server, the webserver (UI at dagster.host:dagster.port) and the daemon (schedules, sensors,
backfills).

DAGSTER_HOME is var/dagster with telemetry off. The code location (dagster_project.definitions) is loaded once,
by `dagster code-server start` on dagster.code_server_port; the webserver and the daemon both reach it through
var/dagster/workspace.yaml (a `grpc_server` entry) instead of each spawning a code server of its own (the
location holds dagster-dbt and dbt-core: about 240 MiB a copy). The UI's "Reload" restarts the code server's
worker with the current code. The pipeline's configuration reaches every process through the same
pipeline.yaml / PIPELINE_* environment; runs start as children of the code server, with its environment.
The code location (module and name) is defined once, in pyproject.toml's `[tool.dagster]`, which `dagster dev`
reads as well.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import httpx

from config.settings import REPO_ROOT, Settings
from infra import supervision
from infra.process import ManagedProcess, PortSpec, ServiceError
from infra.services.base import Probe, ServiceBase, Unit, answers

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

# the code location, as pyproject.toml names it for `dagster dev`
_LOCATION = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["dagster"]
CODE_MODULE: str = _LOCATION["module_name"]
LOCATION_NAME: str = _LOCATION["code_location_name"]

WORKSPACE_YAML = """\
# Written by infra/services/dagster.py; edits are overwritten. The webserver and the daemon share the code
# server `dagster-code-server` runs (dagster.code_server_port).
load_from:
  - grpc_server:
      host: {host}
      port: {port}
      location_name: {location}
"""


def dagster_home(settings: Settings) -> Path:
    return settings.var_dir / "dagster"


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def workspace_file(settings: Settings) -> Path:
    return dagster_home(settings) / "workspace.yaml"


def code_server_answers(settings: Settings) -> bool:
    """The code server opens its port once the definitions are loaded (or their load error is known)."""
    try:
        with socket.create_connection((settings.dagster.host, settings.dagster.code_server_port), timeout=2):
            return True
    except OSError:
        return False


def is_healthy(settings: Settings) -> bool:
    url = f"http://{settings.dagster.host}:{settings.dagster.port}/server_info"
    return httpx.get(url, timeout=3).status_code == 200


def processes(settings: Settings) -> list[ManagedProcess]:
    env = {"DAGSTER_HOME": str(dagster_home(settings)), "PYTHONUNBUFFERED": "1"}
    workspace = str(workspace_file(settings))

    def process(name: str, argv: list[str], **more: Any) -> ManagedProcess:
        log_file = settings.log_dir / f"{name}.log"
        return ManagedProcess(name, argv, log_file, settings.run_dir, env=env, cwd=REPO_ROOT, **more)

    host, port, code_port = settings.dagster.host, settings.dagster.port, settings.dagster.code_server_port
    code_server = process(
        "dagster-code-server",
        [
            _bin("dagster"),
            "code-server",
            "start",
            "-m",
            CODE_MODULE,
            "-d",
            str(REPO_ROOT),
            "--location-name",
            LOCATION_NAME,
            "-h",
            host,
            "-p",
            str(code_port),
            # runs and the worker start with this environment's Python, whatever is on PATH
            "--use-python-environment-entry-point",
        ],
        ports=[PortSpec(host, code_port, "dagster.code_server_port")],
        health=lambda: code_server_answers(settings),
        start_timeout=180,
    )
    webserver = process(
        "dagster-webserver",
        [_bin("dagster-webserver"), "-h", host, "-p", str(port), "-w", workspace],
        ports=[PortSpec(host, port, "dagster.port")],
        health=lambda: is_healthy(settings),
        start_timeout=180,
    )
    daemon = process("dagster-daemon", [_bin("dagster-daemon"), "run", "-w", workspace])
    return [code_server, webserver, daemon]


def write_instance_files(settings: Settings) -> None:
    """DAGSTER_HOME's dagster.yaml, and the workspace of the webserver and the daemon (the shared code server)."""
    home = dagster_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    workspace = WORKSPACE_YAML.format(
        host=settings.dagster.host, port=settings.dagster.code_server_port, location=LOCATION_NAME
    )
    workspace_file(settings).write_text(workspace)


class Dagster(ServiceBase):
    """The control plane: one code server, the webserver (the UI) and the daemon."""

    component = "dagster"

    def start(self, settings: Settings) -> str | None:
        write_instance_files(settings)
        home = dagster_home(settings)
        env = {**os.environ, "DAGSTER_HOME": str(home)}
        for pool, limit in POOLS.items():
            argv = [_bin("dagster"), "instance", "concurrency", "set", pool, str(limit)]
            done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
            if done.returncode != 0:
                raise ServiceError(f"setting Dagster's pool {pool} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        for proc in processes(settings):
            supervision.run(settings, proc)
        return None

    def stop(self, settings: Settings) -> None:
        for proc in reversed(processes(settings)):
            supervision.stop(settings, proc)

    def units(self, settings: Settings) -> list[Unit]:
        code_server, webserver, daemon = processes(settings)
        return [Unit(code_server), Unit(webserver, after=(code_server.name,)), Unit(daemon, after=(code_server.name,))]

    def probes(self, settings: Settings) -> list[Probe]:
        d = settings.dagster
        code_server, webserver, daemon = processes(settings)
        return [
            Probe(code_server.name, f"{d.host}:{d.code_server_port}", answers(code_server_answers, settings)),
            Probe(webserver.name, f"http://{d.host}:{d.port}", answers(is_healthy, settings)),
            Probe(daemon.name, "-", lambda: "ok"),
        ]
