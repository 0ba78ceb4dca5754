"""The dbt-duckdb plugin that gives dbt the lake (dbt/profiles.yml: `plugins: [{module: infra.dbt_plugin}]`).

On every connection dbt opens it loads the DuckDB extensions from their PyPI packages' files and (re)creates
the views `raw.*` and `speed.*` over each Iceberg table's current metadata, and the latest-firing views
(`infra/lake.py`, the same views every other DuckDB reader gets): dbt reads what the catalog says now, offline,
and never a copy. The settings are pipeline.yaml with its `PIPELINE_*` overrides, as everywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection

from infra import lake
from infra.config import load_settings


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self.settings = load_settings()
        if self.creds is not None and self.creds.path not in ("", ":memory:"):
            # the database file lives under var/dbt/, which a fresh checkout does not have yet
            Path(self.creds.path).parent.mkdir(parents=True, exist_ok=True)

    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        conn.execute("SET TimeZone = 'UTC'")
        lake.register(conn, self.settings)
