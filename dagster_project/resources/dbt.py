"""The dbt project (`dbt/`) for Dagster: `dbt_project` prepares its manifest for the pipeline's mode, and
`DbtResource` is dagster-dbt's dbt CLI run the way the platform runs dbt (`lakehouse.dbt_runner`: the
pipeline's vars, the lake's paths and DuckDB's limits, one run at a time on the DuckDB file)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject
from pydantic import Field

from config.settings import Settings, load_settings
from lakehouse import dbt_runner

PROJECT_DIR = dbt_runner.DBT_PROJECT_DIR
EXECUTABLE = dbt_runner.DBT_EXECUTABLE


def _project_fingerprint(settings: Settings) -> str:
    """What the manifest depends on: the project's files and the vars the pipeline passes."""
    digest = hashlib.sha256(json.dumps(dbt_runner.dbt_vars(settings), sort_keys=True, default=str).encode())
    for path in sorted(PROJECT_DIR.rglob("*")):
        if path.is_file() and path.suffix in {".sql", ".yml", ".yaml", ".py"} and "target" not in path.parts:
            digest.update(str(path.relative_to(PROJECT_DIR)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def dbt_project(settings: Settings) -> DbtProject:
    """The project with its manifest for this mode and these settings, parsed again only when the project or
    the vars changed (a parse takes a few seconds; every Dagster run loads the code location)."""
    target = settings.var_dir / "dbt" / f"manifest-{settings.pipeline.mode}"
    target.mkdir(parents=True, exist_ok=True)
    stamp, fingerprint = target / ".parsed", _project_fingerprint(settings)
    # the webserver and the daemon load the code location at the same time: one parses, the other waits
    with open(target / ".parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (stamp.exists() and stamp.read_text() == fingerprint and (target / "manifest.json").exists()):
            args = ["parse", "--quiet", "--target-path", str(target)]
            parsed = dbt_runner.run(settings, args, capture=True, timeout=300)
            if parsed.returncode != 0:
                raise dg.DagsterError(f"dbt parse failed:\n{parsed.stdout[-3000:]}{parsed.stderr[-3000:]}")
            stamp.write_text(fingerprint)
    return DbtProject(project_dir=PROJECT_DIR, target_path=target)


class DbtResource(DbtCliResource):
    """dagster-dbt's dbt CLI, with what the pipeline gives every dbt run: its mode (Lambda adds the batch layer;
    the manifest is parsed per mode), the DuckDB file and dbt's paths under `var_dir`, DuckDB's memory limit and
    dbt's threads (the `dbt` section)."""

    pipeline_mode: str = Field(description="kappa or lambda (pipeline.mode); the manifest is parsed for it.")
    var_dir: str = Field(description="The DuckDB file and dbt's target and logs are under <var_dir>/dbt.")
    memory_limit: str = Field(description="DuckDB's buffer limit, e.g. 1g (dbt.memory_limit).")
    threads: int = Field(description="Models dbt builds at once (dbt.threads).")

    def pipeline_settings(self) -> Settings:
        """The pipeline's configuration for dbt runs as this resource's fields say."""
        return load_settings(
            pipeline={"mode": self.pipeline_mode},
            paths={"var_dir": self.var_dir},
            dbt={"memory_limit": self.memory_limit, "threads": self.threads},
        )

    def pipeline_vars(self) -> dict[str, Any]:
        """The vars every dbt run gets from the pipeline (its mode, the stream's window rules)."""
        return dbt_runner.dbt_vars(self.pipeline_settings())

    @contextmanager
    def lake_environment(self) -> Iterator[None]:
        """While dbt runs: this process's environment with the lake's paths and DuckDB's limits, which the dbt CLI
        subprocess inherits (DbtCliResource takes no environment of its own), restored after; and the turn on
        the DuckDB file (a `make dbt` may be using it)."""
        wanted = {k: v for k, v in dbt_runner.dbt_env(self.pipeline_settings()).items() if k.startswith("DBT_")}
        saved = {key: os.environ.get(key) for key in wanted}
        os.environ.update(wanted)
        try:
            with dbt_runner.duckdb_turn(wanted):
                yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
