"""The Iceberg tables the streaming jobs write, observed for snapshots, rows and files."""

from collections.abc import Iterator

import dagster as dg

from dagster_project.assets.flink import RAW_EVENTS_JOB
from dagster_project.resources import IcebergResource

RAW_TABLES = {
    "raw.http_events": "Every valid event of the topic, late ones included; partitioned by day of event_time.",
    "raw.dead_letter_events": "Messages that are not valid events, with the reason and their Kafka offset.",
}


def table_key(identifier: str) -> dg.AssetKey:
    return dg.AssetKey(["iceberg", *identifier.split(".")])


@dg.multi_observable_source_asset(
    specs=[
        dg.AssetSpec(
            table_key(identifier),
            description=doc,
            deps=[RAW_EVENTS_JOB],
            group_name="lake",
            kinds={"iceberg"},
            metadata={"table": identifier},
        )
        for identifier, doc in RAW_TABLES.items()
    ],
    name="raw_tables",
)
def raw_tables(iceberg: IcebergResource) -> Iterator[dg.ObserveResult]:
    from infra.iceberg import table_stats

    for identifier in RAW_TABLES:
        stats = table_stats(iceberg.load_table(identifier))
        yield dg.ObserveResult(
            asset_key=table_key(identifier),
            data_version=dg.DataVersion(str(stats["snapshot_id"])),
            metadata={
                "rows": dg.MetadataValue.int(stats["rows"]),
                "data_files": dg.MetadataValue.int(stats["files"]),
                "snapshots": dg.MetadataValue.int(stats["snapshots"]),
            },
        )
