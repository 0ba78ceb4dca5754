"""The dbt jobs the schedules run: the dbt build, and Lambda's batch layer (a day partition per run)."""

import dagster as dg

from dagster_project.defs.analytics.assets import BATCH_GROUP

# staging, marts, and in Lambda the serving views and the reconciliation: every dbt model but the batch layer
dbt_build_job = dg.define_asset_job(
    "dbt_build_job", selection=dg.AssetSelection.key_prefixes(["dbt"]) - dg.AssetSelection.groups(BATCH_GROUP)
)

# Lambda: the dbt batch models (published into Iceberg batch.*), a day partition per run
batch_layer_job = dg.define_asset_job("batch_layer_job", selection=dg.AssetSelection.groups(BATCH_GROUP))
