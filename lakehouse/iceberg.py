"""The Iceberg catalog `lake`: one catalog for Flink (Java JdbcCatalog) and Python (pyiceberg SqlCatalog).

By default its tables live in the embedded PostgreSQL the stack starts; any other JDBC database, a SQLite file
(one writer at a time) or a REST catalog through configuration. The tables of the contract (`lakehouse.contract`)
are created here, with partition specs built through the API, so Flink jobs only ever write into existing
tables; the helpers below read a table's state from its metadata without reading data.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, date
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.expressions import BooleanExpression
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Operation
from pyiceberg.transforms import DayTransform

from config.logs import get_logger
from config.settings import Settings
from lakehouse.contract import NAMESPACES, TABLE_PROPERTIES, TABLES, TableSpec

log = get_logger("lakehouse.iceberg")


class LakeError(RuntimeError):
    """The lake cannot do what was asked (catalog unreachable, no credentials, a table not as expected)."""


def jdbc_credentials(settings: Settings) -> dict[str, str]:
    """`jdbc.user` / `jdbc.password` of the catalog database (generated for the embedded PostgreSQL)."""
    if settings.embedded_postgres:
        try:
            secret = settings.catalog_password_file.read_text().strip()
        except FileNotFoundError:
            raise LakeError("the catalog database has no password yet: run `make up` first") from None
        return {"jdbc.user": settings.postgres.user, "jdbc.password": secret}
    return {k: v for k, v in settings.iceberg.properties.items() if k in ("jdbc.user", "jdbc.password")}


def sqlalchemy_uri(settings: Settings) -> str:
    """The pyiceberg (SQLAlchemy) form of the catalog's JDBC URL, with its credentials."""
    jdbc_uri = settings.catalog_jdbc_uri
    if jdbc_uri.startswith("jdbc:sqlite:"):
        return f"sqlite:///{jdbc_uri.removeprefix('jdbc:sqlite:')}?timeout=30"
    if jdbc_uri.startswith("jdbc:postgresql://"):
        creds = jdbc_credentials(settings)
        auth = ""
        if creds.get("jdbc.user"):
            auth = quote(creds["jdbc.user"], safe="") + ":" + quote(creds.get("jdbc.password", ""), safe="") + "@"
        return f"postgresql+psycopg://{auth}{jdbc_uri.removeprefix('jdbc:postgresql://')}"
    raise ValueError(f"iceberg.uri: unsupported JDBC URL {jdbc_uri!r} (allowed: jdbc:postgresql:, jdbc:sqlite:)")


def catalog_properties(settings: Settings) -> dict[str, str]:
    ice = settings.iceberg
    if ice.catalog == "rest":
        props = {"type": "rest", "uri": ice.uri or "", "warehouse": settings.warehouse}
    else:
        props = {"type": "sql", "uri": sqlalchemy_uri(settings), "warehouse": settings.warehouse}
    props.update({k: v for k, v in ice.properties.items() if not k.startswith("jdbc.")})
    return props


def load(settings: Settings) -> Catalog:
    if settings.iceberg.warehouse is None:
        (settings.iceberg_dir / "warehouse").mkdir(parents=True, exist_ok=True)
    if settings.iceberg.catalog == "jdbc" and settings.catalog_jdbc_uri.startswith("jdbc:sqlite:"):
        _prepare_sqlite(settings)
    return load_catalog(settings.iceberg.catalog_name, **catalog_properties(settings))


def _prepare_sqlite(settings: Settings) -> None:
    """Create the SQLite file's folder and switch it to WAL, so readers never block the committing writer."""
    path = Path(settings.catalog_jdbc_uri.removeprefix("jdbc:sqlite:"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path, timeout=30) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def ensure_tables(settings: Settings, tables: list[TableSpec] | None = None) -> list[str]:
    """Create the namespaces and tables that do not exist yet, and add the columns a newer release gave an
    existing table (appended, by name: the jobs insert by position); return the identifiers created."""
    catalog = load(settings)
    for namespace in NAMESPACES:
        catalog.create_namespace_if_not_exists(namespace)
    created = []
    for spec in tables or TABLES:
        if catalog.table_exists(spec.identifier):
            table = catalog.load_table(spec.identifier)
            missing = [f.name for f in spec.schema.fields if f.name not in table.schema().column_names]
            if missing:
                with table.update_schema() as update:
                    update.union_by_name(spec.schema)
                log.info("table_columns_added", table=spec.identifier, columns=",".join(missing))
            continue
        table = catalog.create_table(
            spec.identifier,
            schema=spec.schema,
            properties={**TABLE_PROPERTIES, **spec.properties, "comment": spec.doc},
        )
        if spec.day_partition_on:
            with table.update_spec() as update:
                update.add_field(spec.day_partition_on, DayTransform(), f"{spec.day_partition_on}_day")
        created.append(spec.identifier)
        log.info("table_created", table=spec.identifier)
    return created


@dataclass(frozen=True)
class TableStats:
    """A table's current snapshot as its metadata describes it: no data is read."""

    location: str  # the table's root (its data/ and metadata/ folders)
    snapshot_id: int | None  # None: nothing was ever committed
    committed_at_ms: int | None  # when the current snapshot was committed (epoch ms)
    rows: int
    files: int  # data files
    snapshots: int  # snapshots kept (maintenance expires the old ones)


@dataclass(frozen=True)
class PartitionStats:
    """One day partition of a table, from the current snapshot's manifests."""

    day: date
    rows: int
    files: int  # data files
    last_commit_ms: int  # the last commit that touched the partition (epoch ms; 0 when unknown)


def table_stats(table: Table) -> TableStats:
    """Snapshot, row and file counts of the current snapshot (from the summary: no data is read)."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        return TableStats(table.location(), snapshot_id=None, committed_at_ms=None, rows=0, files=0, snapshots=0)
    summary = snapshot.summary.additional_properties if snapshot.summary else {}
    return TableStats(
        table.location(),
        snapshot_id=snapshot.snapshot_id,
        committed_at_ms=snapshot.timestamp_ms,
        rows=int(summary.get("total-records", 0)),
        files=int(summary.get("total-data-files", 0)),
        snapshots=len(table.snapshots()),
    )


# marks the snapshots a rewrite by table maintenance commits (lakehouse/maintenance.py): rows moved, none arrived
# (the value is written into the tables' snapshot summaries: it stays as it was when maintenance lived in infra/)
REWRITE_PROPERTY = "infra.maintenance"


def appended_rows(table: Table, since_ms: int) -> int:
    """Rows that arrived in `table` with the appends committed at or after `since_ms` (epoch ms), from the
    snapshots' summaries: no data file is read. Rewrites (maintenance's compaction, a replay's overwrite) move
    rows and are not counted; snapshots expired by maintenance (`retain_hours`) are not seen."""
    rows = 0
    for snapshot in table.snapshots():
        summary = snapshot.summary
        if snapshot.timestamp_ms < since_ms or summary is None or summary.operation != Operation.APPEND:
            continue
        if REWRITE_PROPERTY not in summary.additional_properties:
            rows += int(summary.additional_properties.get("added-records", 0))
    return rows


def count_by(table: Table, column: str, row_filter: BooleanExpression) -> dict[Any, int]:
    """Rows per value of `column` among the rows matching `row_filter` (pyiceberg skips the files whose column
    bounds cannot match; only `column` and the filter's columns are read)."""
    counts: dict[Any, int] = {}
    for value in table.scan(row_filter=row_filter, selected_fields=(column,)).to_arrow()[column].to_pylist():
        counts[value] = counts.get(value, 0) + 1
    return counts


def day_partition_stats(table: Table, since: date | None = None) -> dict[str, PartitionStats]:
    """Per day partition (keyed `YYYY-MM-DD`, from `since` on, in order): rows, data files and the time of the
    last commit that touched it, from the current snapshot's manifests (no data is read). A table that is not
    partitioned by day gives nothing."""
    if table.current_snapshot() is None:
        return {}
    out: dict[str, PartitionStats] = {}
    for row in table.inspect.partitions().to_pylist():
        day = next(iter(row["partition"].values()), None) if row["partition"] else None
        if not isinstance(day, date) or (since is not None and day < since):
            continue
        updated = row["last_updated_at"]
        out[day.isoformat()] = PartitionStats(
            day=day,
            rows=int(row["record_count"]),
            files=int(row["file_count"]),
            last_commit_ms=int(updated.replace(tzinfo=UTC).timestamp() * 1000) if updated else 0,
        )
    return dict(sorted(out.items()))
