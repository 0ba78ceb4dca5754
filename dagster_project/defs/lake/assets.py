"""The Iceberg tables of the contract as day-partitioned assets with Dagster's table metadata (name, columns,
row count, location), and in Kappa `windows_replay`, which recomputes days of the replayed speed tables."""

from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg
from pyiceberg.schema import Schema

from config.settings import Settings
from dagster_project.defs.keys import job_key, table_key
from dagster_project.defs.partitions import day_window_ms
from dagster_project.resources import FlinkResource, IcebergResource, PartitionStats, TableStats
from flink_jobs import JOBS
from lakehouse import contract

# the job a Kappa replay runs, and the tables it rewrites (the registry's `replays`)
[REPLAY_JOB] = [name for name, job in JOBS.items() if job.replayable]
REPLAYED = tuple(identifier for identifier, _ in JOBS[REPLAY_JOB].replays)


def observed_tables(settings: Settings) -> list[contract.TableSpec]:
    """The tables that are assets in this mode: the streamed ones, and in Lambda the batch layer's."""
    return [t for t in contract.TABLES if t.streamed or settings.pipeline.mode == "lambda"]


def column_schema(schema: Schema) -> dg.TableSchema:
    """An Iceberg schema as Dagster shows a table's columns: name, type, doc, whether it may be null."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=field.name,
                type=str(field.field_type),
                description=field.doc,
                constraints=dg.TableColumnConstraints(nullable=not field.required),
            )
            for field in schema.fields
        ]
    )


def table_metadata(table: contract.TableSpec, catalog_name: str) -> dict[str, Any]:
    """What the asset of a table shows of its definition."""
    return {
        "table": table.identifier,
        "partitioned_by": f"day({table.day_partition_on})",
        "dagster/table_name": f"{catalog_name}.{table.identifier}",
        "dagster/column_schema": dg.MetadataValue.table_schema(column_schema(table.schema)),
    }


def stats_metadata(stats: TableStats) -> dict[str, Any]:
    """An observation (or materialisation) of a table with commits, from its current snapshot."""
    committed_at = (stats.committed_at_ms or 0) / 1000
    return {
        "snapshot_id": str(stats.snapshot_id),
        "rows": dg.MetadataValue.int(stats.rows),
        "data_files": dg.MetadataValue.int(stats.files),
        "snapshots": dg.MetadataValue.int(stats.snapshots),
        "last_commit_at": dg.MetadataValue.timestamp(committed_at),
        # what Dagster's own views read: the catalog's row count, freshness and the table's location
        "dagster/row_count": dg.MetadataValue.int(stats.rows),
        "dagster/last_updated_timestamp": dg.MetadataValue.timestamp(committed_at),
        "dagster/uri": dg.MetadataValue.text(stats.location),
    }


def partition_metadata(partition: PartitionStats) -> dict[str, Any]:
    """An observation of one day partition of a table."""
    return {
        "rows": dg.MetadataValue.int(partition.rows),
        "data_files": dg.MetadataValue.int(partition.files),
        "dagster/partition_row_count": dg.MetadataValue.int(partition.rows),
    }


def _spec(
    table: contract.TableSpec, settings: Settings, days: dg.DailyPartitionsDefinition, *, replayed: bool
) -> dg.AssetSpec:
    deps = [job_key(table.writer)]
    if replayed:
        deps.append(table_key(contract.HTTP_EVENTS.identifier))
    return dg.AssetSpec(
        table_key(table.identifier),
        description=table.doc,
        deps=deps,
        group_name="lake",
        kinds={"iceberg"},
        partitions_def=days,
        metadata=table_metadata(table, settings.iceberg.catalog_name),
    )


def _windows_replay(days: dg.DailyPartitionsDefinition, specs: Sequence[dg.AssetSpec]) -> dg.AssetsDefinition:
    @dg.multi_asset(specs=specs, name="windows_replay", partitions_def=days, pool="flink_replay")
    def windows_replay(
        context: dg.AssetExecutionContext, flink: FlinkResource, iceberg: IcebergResource
    ) -> Iterator[dg.MaterializeResult]:
        start_ms, end_ms = day_window_ms(context)
        days_replayed = context.partition_keys
        context.log.info(f"Kappa replay of {REPLAY_JOB} over {days_replayed[0]} .. {days_replayed[-1]}")
        flink_job_id = flink.replay(REPLAY_JOB, start_ms, end_ms)
        first_day = context.partition_time_window.start.date()
        for spec in specs:
            identifier = str(spec.metadata["table"])
            partitions = iceberg.day_partitions(identifier, since=first_day)
            rows = sum(partitions[day].rows for day in days_replayed if day in partitions)
            table = iceberg.table_stats(identifier)
            yield dg.MaterializeResult(
                asset_key=spec.key,
                metadata={
                    "rows": dg.MetadataValue.int(rows),  # of the days replayed
                    "flink_job_id": flink_job_id,
                    "mode": "kappa replay",
                    "dagster/partition_row_count": dg.MetadataValue.int(rows),
                    "dagster/row_count": dg.MetadataValue.int(table.rows),
                    "dagster/uri": dg.MetadataValue.text(table.location),
                },
            )

    return windows_replay


def build_table_assets(
    settings: Settings, days: dg.DailyPartitionsDefinition
) -> list[dg.AssetSpec | dg.AssetsDefinition]:
    """The streams append to raw.* and speed.* all the time: those tables are external assets downstream of the
    Flink job that writes them, observed by the lake's sensor (per table and per day partition). In Kappa, the
    speed tables of the streaming job's SQL windows are one materialisable multi-asset instead: materialising a
    day partition (or backfilling a range of them from the UI) runs the job's own window SQL in batch mode on
    the Flink cluster over raw.http_events of that day and replaces the partition (`python -m infra replay
    streaming`). In Lambda the batch.* tables are the dbt batch layer's assets (analytics)."""
    kappa = settings.pipeline.mode == "kappa"
    streamed = contract.STREAMED_TABLES
    external: list[dg.AssetSpec | dg.AssetsDefinition] = [
        _spec(t, settings, days, replayed=False) for t in streamed if not (kappa and t.identifier in REPLAYED)
    ]
    if not kappa:
        return external
    replayed = [_spec(t, settings, days, replayed=True) for t in streamed if t.identifier in REPLAYED]
    return [*external, _windows_replay(days, replayed)]
