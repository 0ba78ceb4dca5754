"""Jobs: observing the topic now (from the UI; the freshness and lag sensor observes it every 5 minutes without a
run), those the schedules run (the dbt build, Lambda's daily batch layer, table maintenance), and the recovery of
the supervisor that `services_on_failure` requests."""

import dagster as dg

from config.settings import load_settings
from dagster_project.assets.iceberg import table_key
from dagster_project.assets.kafka import HTTP_EVENTS_TOPIC
from dagster_project.resources import StackResource
from lakehouse import contract, maintenance

observe_sources_job = dg.define_asset_job("observe_sources_job", selection=dg.AssetSelection.assets(HTTP_EVENTS_TOPIC))

# staging, marts, and in Lambda the serving views and the reconciliation: every dbt model but the batch layer
dbt_build_job = dg.define_asset_job(
    "dbt_build_job", selection=dg.AssetSelection.key_prefixes(["dbt"]) - dg.AssetSelection.groups("dbt_batch")
)

# Lambda: the dbt batch models (published into Iceberg batch.*), a day partition per run
batch_layer_job = dg.define_asset_job("batch_layer_job", selection=dg.AssetSelection.groups("dbt_batch"))


class MaintenanceConfig(dg.Config):
    """The options of `python -m infra maintain` (lakehouse/maintenance.py)."""

    min_files: int = maintenance.Options.min_files
    retain_hours: float = maintenance.Options.retain_hours


@dg.op(description="Compact small files (collapsing re-fired windows) and expire old snapshots of every table.")
def maintain_tables(context: dg.OpExecutionContext, config: MaintenanceConfig) -> None:
    settings = load_settings()
    options = maintenance.Options(min_files=config.min_files, retain_hours=config.retain_hours)
    # Kappa leaves batch.* empty and not an asset: nothing to maintain there
    tables = [t for t in contract.TABLES if settings.pipeline.mode == "lambda" or t.streamed]
    summary = maintenance.run(settings, options, tables)
    for identifier, report in summary["tables"].items():
        context.log_event(
            dg.AssetObservation(
                asset_key=table_key(identifier),
                metadata={
                    "maintenance": report["status"],
                    "partitions_rewritten": dg.MetadataValue.int(report["partitions_rewritten"]),
                    "files_before": dg.MetadataValue.int(report["files_before"]),
                    "files_after": dg.MetadataValue.int(report["files_after"]),
                    "refirings_collapsed": dg.MetadataValue.int(report["refirings_collapsed"]),
                    "snapshots_expired": dg.MetadataValue.int(report["snapshots_expired"]),
                    "files_deleted": dg.MetadataValue.int(report["files_deleted"]),
                },
            )
        )
    failed = [t for t, r in summary["tables"].items() if r["status"] != "ok"]
    if failed:
        raise dg.Failure(f"maintenance failed for {', '.join(failed)} (see the log)", metadata={"tables": failed})


@dg.job(description="Iceberg table maintenance: compaction and snapshot expiry (python -m infra maintain).")
def table_maintenance_job() -> None:
    maintain_tables()


@dg.op(description="Start the supervisor again: it adopts the running services and brings back the ones that ended.")
def start_supervisor(context: dg.OpExecutionContext, stack: StackResource) -> None:
    pid = stack.start_supervisor()
    context.log.info(f"supervisor running (pid {pid})")


@dg.job(description="Recovery of the stack's supervisor (infra/supervisor.py), requested by `services_on_failure`.")
def recover_services_job() -> None:
    start_supervisor()
