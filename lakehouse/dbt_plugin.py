"""The dbt-duckdb plugin that gives dbt the lake (dbt/profiles.yml: `plugins: [{module: lakehouse.dbt_plugin}]`).

Reading: on every connection dbt opens it loads the DuckDB extensions from their PyPI packages' files and
(re)creates the views `raw.*`, `speed.*` and `batch.*` over each Iceberg table's current metadata, and the
latest-firing views (`lakehouse/duckdb_views.py`, the same views every other DuckDB reader gets): dbt reads
what the catalog says now, offline, and never a copy.

Writing (Lambda's batch layer): a model materialised `external` with `plugin: lake` is written by DuckDB to a
Parquet file, then `store()` publishes it into its Iceberg table (`iceberg_table`), replacing exactly the rows
of [`replace_from`, `replace_until`) of `replace_column` (a day partition: any engine reads the result), and
points the DuckDB view of that table at the new snapshot. The settings are pipeline.yaml with its `PIPELINE_*`
overrides, as everywhere else.

Functions: `checkout_funnels(steps, routes, timeout_ms)`, the stream's count-window-with-timeout rules
(flink_jobs/checkout_funnel.py, one implementation for both layers) over one user's funnel requests, for
dbt/models/batch/batch_checkout_funnels.sql.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import asdict
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from dbt.adapters.duckdb.plugins import BasePlugin
from dbt.adapters.duckdb.utils import TargetConfig
from duckdb import DuckDBPyConnection
from duckdb.func import PythonUDFType

from config.logs import get_logger
from config.settings import load_settings
from flink_jobs.checkout_funnel import FunnelStep, funnels_of
from lakehouse import contract, duckdb_views, iceberg

log = get_logger("lakehouse.dbt_plugin")


def _instant(day_or_instant: str) -> str:
    """An ISO day is its first instant in UTC (what pyiceberg compares a timestamptz column with)."""
    return f"{day_or_instant}T00:00:00+00:00" if len(day_or_instant) == 10 else day_or_instant


def without_empty_marker(rows: pa.Table) -> pa.Table:
    """The model's rows as dbt-duckdb wrote them, without the row of NULLs it writes for an empty result (the
    `external` materialization keeps the file's schema that way; its own view filters the row out)."""
    if rows.num_rows == 1 and all(column.null_count == 1 for column in rows.columns):
        return rows.slice(0, 0)
    return rows


FUNNEL_STEPS = "STRUCT(event_ms BIGINT, event_id VARCHAR, route VARCHAR, status_code INTEGER)[]"
CLOSED_FUNNELS = (
    "STRUCT(window_start_ms BIGINT, window_end_ms BIGINT, steps INTEGER, deepest_step INTEGER, last_route VARCHAR, "
    "outcome VARCHAR, closed_by VARCHAR)[]"
)
CLOSED_FUNNELS_ARROW = pa.list_(
    pa.struct([
        ("window_start_ms", pa.int64()), ("window_end_ms", pa.int64()), ("steps", pa.int32()),
        ("deepest_step", pa.int32()), ("last_route", pa.string()), ("outcome", pa.string()),
        ("closed_by", pa.string()),
    ])
)  # fmt: skip


def checkout_funnels(steps: list[dict[str, Any]], routes: list[str], timeout_ms: int) -> list[dict[str, Any]]:
    """The funnels one user's funnel requests make (any order), as the stream closes them."""
    return [asdict(c) for c in funnels_of(tuple(routes), timeout_ms, (FunnelStep(**s) for s in steps))]


def _checkout_funnels_arrow(steps: pa.Array, routes: pa.Array, timeout_ms: pa.Array) -> pa.Array:
    """checkout_funnels over a vector of users at once: DuckDB's per-row Python calls cost 47x more."""
    users = zip(steps.to_pylist(), routes.to_pylist(), timeout_ms.to_pylist(), strict=True)
    return pa.array([None if None in user else checkout_funnels(*user) for user in users], type=CLOSED_FUNNELS_ARROW)


def register_functions(conn: DuckDBPyConnection) -> None:
    with suppress(duckdb.InvalidInputException):  # not registered on this connection yet
        conn.remove_function("checkout_funnels")
    conn.create_function(
        "checkout_funnels", _checkout_funnels_arrow, [FUNNEL_STEPS, "VARCHAR[]", "BIGINT"], CLOSED_FUNNELS,
        type=PythonUDFType.ARROW,
    )  # fmt: skip


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self.settings = load_settings()
        self.connection: DuckDBPyConnection | None = None
        if self.creds is not None:
            # the database file and the batch models' Parquet live under var/dbt/, which a fresh checkout lacks
            if self.creds.path not in ("", ":memory:"):
                Path(self.creds.path).parent.mkdir(parents=True, exist_ok=True)
            Path(self.creds.external_root).mkdir(parents=True, exist_ok=True)

    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        conn.execute("SET TimeZone = 'UTC'")
        duckdb_views.register(conn, self.settings)
        register_functions(conn)
        self.connection = conn

    def store(self, target_config: TargetConfig) -> None:
        config = target_config.config
        identifier = config.get("iceberg_table")
        column, start, end = (config.get(k) for k in ("replace_column", "replace_from", "replace_until"))
        if not identifier or not (column and start and end):
            raise ValueError(
                f"model {target_config.relation}: plugin 'lake' needs the configs iceberg_table, replace_column, "
                "replace_from and replace_until"
            )
        assert target_config.location is not None
        table = iceberg.load(self.settings).load_table(identifier)
        rows = without_empty_marker(pq.read_table(target_config.location.path))
        arrow_schema = table.schema().as_arrow()
        rows = rows.select(arrow_schema.names).cast(arrow_schema)
        start, end = (_instant(str(day)) for day in (start, end))
        table.overwrite(rows, overwrite_filter=f"{column} >= '{start}' and {column} < '{end}'")
        log.info("batch_published", table=identifier, rows=rows.num_rows, replaced_from=start, replaced_until=end)
        if self.connection is not None:
            spec = next(s for s in contract.TABLES if s.identifier == identifier)
            duckdb_views.register(self.connection, self.settings, [spec])
