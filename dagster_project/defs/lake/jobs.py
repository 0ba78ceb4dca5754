"""`table_maintenance_job`: compaction and snapshot expiry of the Iceberg tables that are assets in this mode
(`python -m infra maintain`), each table's outcome recorded as an observation of its asset."""

from typing import Any

import dagster as dg

from config.settings import Settings
from dagster_project.defs.keys import table_key
from dagster_project.defs.lake.assets import observed_tables
from dagster_project.resources import IcebergResource, MaintenanceOptions


class MaintenanceConfig(dg.Config):
    """The options of `python -m infra maintain`."""

    min_files: int = MaintenanceOptions.min_files
    retain_hours: float = MaintenanceOptions.retain_hours


def build_maintenance_job(settings: Settings) -> dg.JobDefinition:
    # Kappa leaves batch.* empty and not an asset: nothing to maintain there
    tables = observed_tables(settings)

    @dg.op(description="Compact small files (collapsing re-fired windows) and expire old snapshots of every table.")
    def maintain_tables(context: dg.OpExecutionContext, config: MaintenanceConfig, iceberg: IcebergResource) -> None:
        options = MaintenanceOptions(min_files=config.min_files, retain_hours=config.retain_hours)
        reports = iceberg.maintain(tables, options)
        for report in reports:
            metadata: dict[str, Any] = {
                "maintenance": report.status,
                "partitions_rewritten": dg.MetadataValue.int(report.partitions_rewritten),
                "files_before": dg.MetadataValue.int(report.files_before),
                "files_after": dg.MetadataValue.int(report.files_after),
                "refirings_collapsed": dg.MetadataValue.int(report.refirings_collapsed),
                "snapshots_expired": dg.MetadataValue.int(report.snapshots_expired),
                "files_deleted": dg.MetadataValue.int(report.files_deleted),
            }
            if report.status == "ok":
                metadata["dagster/row_count"] = dg.MetadataValue.int(report.rows_after)
            context.log_event(dg.AssetObservation(asset_key=table_key(report.table), metadata=metadata))
        failed = [report.table for report in reports if report.status != "ok"]
        if failed:
            raise dg.Failure(f"maintenance failed for {', '.join(failed)} (see the log)", metadata={"tables": failed})

    @dg.job(description="Iceberg table maintenance: compaction and snapshot expiry (python -m infra maintain).")
    def table_maintenance_job() -> None:
        maintain_tables()

    return table_maintenance_job
