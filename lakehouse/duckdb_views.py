"""Read the lake with SQL: DuckDB over the Iceberg tables' current snapshots, offline.

Every table of the contract becomes a view `<namespace>.<table>` over `iceberg_scan(<current metadata>)` (the
catalog's metadata location at the time of the call: no copy that goes stale), and every table of window
firings gets its reader view, the latest firing of each window (`TableSpec.refirings`, the one definition
of that rule; maintenance applies the same one). The DuckDB extensions are loaded from their PyPI packages'
files, never downloaded. dbt-duckdb registers the same views through `register()`.

    from lakehouse import duckdb_views
    with lake.connect(settings) as con:
        con.sql("SELECT * FROM speed.requests_per_route_minute").show()
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path

import duckdb

from config.settings import Settings
from lakehouse import contract, iceberg

EXTENSIONS = ("avro", "iceberg")  # iceberg needs avro loaded first


def extension_file(name: str) -> Path:
    """The extension file shipped by the `duckdb-extension-<name>` package for this DuckDB version."""
    package = importlib.import_module(f"duckdb_extension_{name}")
    folder = Path(package.__file__ or "").parent / "extensions" / f"v{duckdb.__version__}"
    found = sorted(folder.glob(f"{name}.duckdb_extension"))
    if not found:
        raise FileNotFoundError(
            f"no {name} extension for DuckDB {duckdb.__version__} in {folder}: "
            f"duckdb and duckdb-extension-{name} must have the same version (infra/versions.toml)"
        )
    return found[0]


def _local(location: str) -> str:
    return location.removeprefix("file://") if location.startswith("file:///") else location.removeprefix("file:")


def load_extensions(con: duckdb.DuckDBPyConnection) -> None:
    """Load the extensions the lake's views need from their packages' files (a database file holding such views,
    e.g. dbt's, needs them on every connection)."""
    for name in EXTENSIONS:
        con.execute(f"LOAD '{extension_file(name)}'")


def register(con: duckdb.DuckDBPyConnection, settings: Settings, tables: Iterable[contract.TableSpec] = ()) -> None:
    """Load the extensions and (re)create the views of `tables` (default: all) on `con`."""
    load_extensions(con)
    catalog = iceberg.load(settings)
    for spec in tables or contract.TABLES:
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{spec.layer}"')
        location = _local(catalog.load_table(spec.identifier).metadata_location)
        con.execute(f"CREATE OR REPLACE VIEW {spec.identifier} AS SELECT * FROM iceberg_scan('{location}')")
        if spec.refirings is not None:
            view = spec.refirings
            con.execute(f"CREATE OR REPLACE VIEW {view.view} AS {view.latest_sql(spec.identifier)}")


def connect(settings: Settings, tables: Iterable[contract.TableSpec] = ()) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the lake's views; extensions never auto-installed or downloaded."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.execute("SET TimeZone = 'UTC'")
    register(con, settings, tables)
    return con
