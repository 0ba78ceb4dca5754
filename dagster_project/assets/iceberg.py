"""The Iceberg tables of the contract as assets, partitioned by day as the tables are.

The streams append to raw.* and speed.* all the time: those tables are external assets downstream of the
Flink job that writes them; the freshness and lag sensor (sensors.py) records their snapshots, rows, files and
last commit, per table and per day partition. In Kappa, the speed tables of the streaming job's SQL windows are
also materialisable per day: materialising a day partition (or backfilling a range of them from the UI) runs
the job's own window SQL in batch mode on the Flink cluster over raw.http_events of that day and replaces the
partition (`python -m infra replay streaming`). In Lambda the batch.* tables are the dbt batch layer's assets
(assets/dbt.py).
"""

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import dagster as dg

from config.settings import Settings
from dagster_project.assets.flink import job_key
from dagster_project.partitions import day_window_ms
from dagster_project.resources import FlinkResource, IcebergResource
from flink_jobs import JOBS
from lakehouse import contract

# the job a Kappa replay runs, and the tables it rewrites (the registry's `replays`)
[REPLAY_JOB] = [name for name, job in JOBS.items() if job.replayable]
REPLAYED = tuple(identifier for identifier, _ in JOBS[REPLAY_JOB].replays)
# the tables a stream appends to; batch.* is written by dbt
STREAMED = contract.STREAMED_TABLES


def table_key(identifier: str) -> dg.AssetKey:
    return dg.AssetKey(["iceberg", *identifier.split(".")])


def _spec(table: contract.TableSpec, days: dg.DailyPartitionsDefinition, *, replayed: bool) -> dg.AssetSpec:
    deps = [job_key(table.writer)]
    if replayed:
        deps.append(table_key("raw.http_events"))
    return dg.AssetSpec(
        table_key(table.identifier),
        description=table.doc,
        deps=deps,
        group_name="lake",
        kinds={"iceberg"},
        partitions_def=days,
        metadata={"table": table.identifier, "partitioned_by": f"day({table.day_partition_on})"},
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
        for spec in specs:
            identifier = str(spec.metadata["table"])
            partitions = iceberg.day_partitions(identifier, since=datetime.fromtimestamp(start_ms / 1000, UTC).date())
            rows = sum(partitions.get(day, {}).get("rows", 0) for day in days_replayed)
            yield dg.MaterializeResult(
                asset_key=spec.key,
                metadata={"rows": dg.MetadataValue.int(rows), "flink_job_id": flink_job_id, "mode": "kappa replay"},
            )

    return windows_replay


def build_table_assets(
    settings: Settings, days: dg.DailyPartitionsDefinition
) -> list[dg.AssetSpec | dg.AssetsDefinition]:
    """Kappa: the replayed speed tables are one materialisable multi-asset; every other streamed table (and all
    of them in Lambda) an external asset."""
    kappa = settings.pipeline.mode == "kappa"
    external: list[dg.AssetSpec | dg.AssetsDefinition] = [
        _spec(t, days, replayed=False) for t in STREAMED if not (kappa and t.identifier in REPLAYED)
    ]
    if not kappa:
        return external
    replayed = [_spec(t, days, replayed=True) for t in STREAMED if t.identifier in REPLAYED]
    return [*external, _windows_replay(days, replayed)]
