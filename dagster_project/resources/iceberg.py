"""`IcebergResource`: the Iceberg catalog `lake` (the one Flink writes through), opened with the catalog
settings of the resource's fields; table state from metadata (`lakehouse.iceberg`) and table maintenance
(`lakehouse.maintenance`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import dagster as dg
from pydantic import Field
from pyiceberg.expressions import parser
from pyiceberg.table import Table

from config.settings import Settings, load_settings
from lakehouse import iceberg, maintenance
from lakehouse.contract import TableSpec
from lakehouse.iceberg import PartitionStats, TableStats
from lakehouse.maintenance import TableReport


class IcebergResource(dg.ConfigurableResource):
    """The Iceberg catalog (the `iceberg` section of pipeline.yaml)."""

    catalog_name: str = Field(description="The catalog's name (iceberg.catalog_name).")
    catalog: str = Field(description="jdbc or rest (iceberg.catalog).")
    uri: str | None = Field(
        default=None, description="The JDBC URL or REST catalog URL; unset: the stack's PostgreSQL (iceberg.uri)."
    )
    warehouse: str | None = Field(
        default=None, description="Where new tables' files go; unset: var/iceberg/warehouse (iceberg.warehouse)."
    )
    properties: dict[str, str] = Field(
        default_factory=dict, description="Extra catalog properties: S3 endpoint, credentials (iceberg.properties)."
    )

    def pipeline_settings(self) -> Settings:
        """The pipeline's configuration with this catalog."""
        return load_settings(
            iceberg={
                "catalog_name": self.catalog_name,
                "catalog": self.catalog,
                "uri": self.uri,
                "warehouse": self.warehouse,
                "properties": self.properties,
            }
        )

    def catalog_properties(self) -> dict[str, str]:
        """The properties pyiceberg opens the catalog with."""
        return iceberg.catalog_properties(self.pipeline_settings())

    def _table(self, identifier: str) -> Table:
        return iceberg.load(self.pipeline_settings()).load_table(identifier)

    def table_stats(self, identifier: str) -> TableStats:
        """The table's current snapshot: rows, files, last commit, location (from metadata: no data is read)."""
        return iceberg.table_stats(self._table(identifier))

    def appended_rows(self, identifier: str, since: datetime) -> int:
        """Rows appended to the table by the commits since `since` (the snapshots' summaries: no data is read)."""
        return iceberg.appended_rows(self._table(identifier), int(since.timestamp() * 1000))

    def count_since(self, identifier: str, column: str, time_column: str, since: datetime) -> dict[Any, int]:
        """Rows per value of `column` among the rows whose `time_column` is at or after `since` (a scan of the
        files whose bounds can match; only the two columns are read)."""
        row_filter = parser.parse(f"{time_column} >= '{since.isoformat()}'")
        return iceberg.count_by(self._table(identifier), column, row_filter)

    def day_partitions(self, identifier: str, since: date | None = None) -> dict[str, PartitionStats]:
        """Rows, files and last commit of each day partition of the table, keyed YYYY-MM-DD (from its manifests)."""
        return iceberg.day_partition_stats(self._table(identifier), since)

    def maintain(self, tables: Sequence[TableSpec], options: maintenance.Options) -> list[TableReport]:
        """Compact and expire snapshots of `tables` (`python -m infra maintain`); a report per table."""
        summary = maintenance.run(self.pipeline_settings(), options, tables)
        return [TableReport(table=identifier, **report) for identifier, report in summary["tables"].items()]
