"""Running the dbt project (`dbt/`) the way the platform does: `python -m infra dbt <dbt arguments>`, Dagster's
dbt resource and the tests all go through here.

The pipeline's settings reach dbt as vars: `pipeline.mode` (Lambda adds the batch layer) and the stream's
window rules (`streaming.*`), so the batch layer recomputes exactly the windows the stream computes. Vars given
on the command line (`--vars '{batch_start: 2026-11-24}'`) are merged over them. The DuckDB file, dbt's target
and logs live under `var/dbt/` unless DBT_DUCKDB_PATH, DBT_TARGET_PATH, DBT_LOG_PATH, DBT_EXTERNAL_ROOT say
otherwise; DuckDB's memory limit and dbt's threads come from the `dbt` section of pipeline.yaml. DuckDB lets one
process write its file: dbt runs on the same file (this command, Dagster's runs) take turns through a file lock
beside it, so a `make dbt` while Dagster's scheduled build runs waits instead of failing.

    python -m infra dbt build                                   # the mode of pipeline.yaml, yesterday's batch
    python -m infra dbt build --vars '{batch_start: 2026-11-24, batch_end: 2026-11-25}'
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import yaml

from config.logs import get_logger
from config.settings import REPO_ROOT, ConfigError, Settings

log = get_logger("lakehouse.dbt_runner")

DBT_PROJECT_DIR = REPO_ROOT / "dbt"
# dbt-core, installed into this environment next to this interpreter (never looked up on PATH)
DBT_EXECUTABLE = Path(sys.executable).parent / "dbt"


def dbt_vars(settings: Settings) -> dict[str, Any]:
    """The vars every dbt run gets from the pipeline's settings."""
    streaming = settings.streaming
    return {
        "pipeline_mode": settings.pipeline.mode,
        "session_gap_minutes": streaming.session_gap_minutes,
        "funnel_routes": list(streaming.funnel_routes),
        "funnel_timeout_minutes": streaming.funnel_timeout_minutes,
        "lookaround_minutes": streaming.replay_lookahead_minutes,
        "dedup_horizon_minutes": streaming.dedup_horizon_minutes,
    }


def dbt_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a dbt run: `base` (default: this process's) with the var/dbt/ paths where unset."""
    env = dict(os.environ if base is None else base)
    root = settings.var_dir / "dbt"
    env.setdefault("DBT_DUCKDB_PATH", str(root / "lake.duckdb"))
    env.setdefault("DBT_TARGET_PATH", str(root / "target"))
    env.setdefault("DBT_LOG_PATH", str(root / "logs"))
    env.setdefault("DBT_EXTERNAL_ROOT", str(root / "external"))
    env.setdefault("DBT_DUCKDB_MEMORY_LIMIT", settings.dbt.memory_limit)
    env.setdefault("DBT_THREADS", str(settings.dbt.threads))
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return env


def split_vars(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    """The arguments without `--vars`, and the vars they gave (YAML or JSON, as dbt takes them)."""
    rest: list[str] = []
    given: dict[str, Any] = {}
    items = iter(args)
    for arg in items:
        if arg == "--vars" or arg.startswith("--vars="):
            text = arg.partition("=")[2] if "=" in arg else next(items, "")
            parsed = yaml.safe_load(text) if text.strip() else {}
            if not isinstance(parsed, dict):
                raise ConfigError(f"dbt --vars must be a mapping, got {text!r}")
            given |= parsed
        else:
            rest.append(arg)
    return rest, given


def command(settings: Settings, args: list[str]) -> list[str]:
    """The dbt command line for `args`, the pipeline's vars merged under the ones `args` gave."""
    rest, given = split_vars(args)
    merged = dbt_vars(settings) | given
    return [
        str(DBT_EXECUTABLE), *rest, "--vars", json.dumps(merged, default=str),
        "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
    ]  # fmt: skip


@contextmanager
def duckdb_turn(env: Mapping[str, str]) -> Iterator[None]:
    """Hold the turn on the DuckDB file of `env` (DBT_DUCKDB_PATH) while a dbt run uses it."""
    path = Path(env["DBT_DUCKDB_PATH"] + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting_for_duckdb", file=env["DBT_DUCKDB_PATH"], reason="another dbt run is using it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def run(
    settings: Settings, args: list[str], *, capture: bool = False, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run dbt in the project folder (its output streams to ours unless `capture`); every command but `parse`
    (which opens no database) waits for its turn on the DuckDB file."""
    env = dbt_env(settings)
    with duckdb_turn(env) if args[:1] != ["parse"] else nullcontext():
        return subprocess.run(
            command(settings, args), cwd=DBT_PROJECT_DIR, env=env, text=True, capture_output=capture,
            timeout=timeout, check=False,
        )  # fmt: skip
