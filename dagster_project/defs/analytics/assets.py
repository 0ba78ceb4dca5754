"""The dbt project (`dbt/`) as assets (each model an asset, each test an asset check, the sources the Iceberg
tables' assets), and in Lambda the day-partitioned batch layer with the Iceberg batch.* tables it publishes."""

import json
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtProject, dbt_assets

from config.settings import Settings
from dagster_project.defs.keys import table_key
from dagster_project.defs.lake.assets import table_metadata
from dagster_project.resources import DbtResource
from lakehouse import contract

BATCH_SELECTION = "path:models/batch"
BATCH_GROUP = "dbt_batch"
POOL = "duckdb"


class LakeTranslator(DagsterDbtTranslator):
    """dbt sources are the Iceberg tables' assets (iceberg/raw/http_events, iceberg/batch/user_sessions, ...);
    models keep their names under dbt/, grouped by folder (staging, marts, batch, serving)."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return table_key(f"{dbt_resource_props['source_name']}.{dbt_resource_props['name']}")
        return dg.AssetKey(["dbt", dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return "lake"
        return f"dbt_{dbt_resource_props['fqn'][1]}" if len(dbt_resource_props["fqn"]) > 2 else "dbt"


def build_dbt_assets(
    settings: Settings, project: DbtProject, days: dg.DailyPartitionsDefinition
) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """Runs get the pipeline's vars and the lake's environment from the dbt resource, as `python -m infra dbt`
    does. Lambda adds the batch models, partitioned by day: materialising a day partition (or backfilling a range
    of them from the UI) runs them with `batch_start`/`batch_end` set to that window, which replaces exactly
    those days of the Iceberg batch.* tables (iceberg/batch/<measure>, downstream of dbt/batch_<measure>).
    Everything else is rebuilt whole. Kappa has no batch models: the manifest is parsed per mode
    (`pipeline_mode` enables them). dbt runs share one DuckDB file: they run one at a time (the `duckdb` pool)."""
    translator = LakeTranslator()

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        dagster_dbt_translator=translator,
        exclude=BATCH_SELECTION,
        name="dbt_models",
        pool=POOL,
    )
    def dbt_models(context: dg.AssetExecutionContext, dbt: DbtResource) -> Iterator[Any]:
        with dbt.lake_environment():
            yield from dbt.cli(["build", "--vars", json.dumps(dbt.pipeline_vars())], context=context).stream()

    if settings.pipeline.mode != "lambda":
        return [dbt_models]

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        dagster_dbt_translator=translator,
        select=BATCH_SELECTION,
        partitions_def=days,
        name="dbt_batch_layer",
        pool=POOL,
        backfill_policy=dg.BackfillPolicy.multi_run(1),  # a run per day: the UI shows each day's progress
    )
    def dbt_batch_layer(context: dg.AssetExecutionContext, dbt: DbtResource) -> Iterator[Any]:
        window = context.partition_time_window
        batch_vars = dbt.pipeline_vars() | {
            "batch_start": window.start.date().isoformat(),
            "batch_end": window.end.date().isoformat(),
        }
        context.log.info(f"batch layer for [{batch_vars['batch_start']}, {batch_vars['batch_end']})")
        # the batch models read staging views (stg_http_events): create them first, so a day partition runs on
        # a DuckDB file no unpartitioned run has built yet (a fresh var/, a first backfill from the UI)
        upstream = ["run", "--select", f"+{BATCH_SELECTION}", "--exclude", BATCH_SELECTION]
        with dbt.lake_environment():
            dbt.cli([*upstream, "--vars", json.dumps(batch_vars)], manifest=project.manifest_path).wait()
            yield from dbt.cli(["build", "--vars", json.dumps(batch_vars)], context=context).stream()

    # what the batch models publish: Iceberg batch.*, read back by the serving views as dbt sources
    published = [
        dg.AssetSpec(
            table_key(table.identifier),
            description=table.doc,
            deps=[dg.AssetKey(["dbt", f"batch_{table.name}"])],
            group_name="lake",
            kinds={"iceberg"},
            partitions_def=days,
            metadata=table_metadata(table, settings.iceberg.catalog_name),
        )
        for table in contract.BATCH_TABLES
    ]
    return [dbt_models, dbt_batch_layer, *published]
