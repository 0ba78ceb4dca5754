"""The dbt project (`dbt/`) as assets: each model an asset, each dbt test an asset check, the dbt sources the
Iceberg table assets they read. Runs go through the same vars as `python -m infra dbt` (lakehouse/dbt_runner.py).

Lambda adds the batch models, partitioned by day: materialising a day partition (or backfilling a range of
them from the UI) runs them with `batch_start`/`batch_end` set to that window, which replaces exactly those
days of the Iceberg `batch.*` tables (iceberg/batch/<measure>, downstream of dbt/batch_<measure>). Everything
else is rebuilt whole. Kappa has no batch models: the manifest is parsed per mode (`pipeline_mode` enables
them), so each mode sees only its own models. dbt runs share one DuckDB file: they run one at a time (the
`duckdb` pool).
"""

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from config.settings import Settings
from dagster_project.assets.iceberg import table_key
from lakehouse import contract, dbt_runner

BATCH_SELECTION = "path:models/batch"
POOL = "duckdb"


def _project_fingerprint(settings: Settings) -> str:
    """What the manifest depends on: the project's files and the vars the pipeline passes."""
    digest = hashlib.sha256(json.dumps(dbt_runner.dbt_vars(settings), sort_keys=True, default=str).encode())
    for path in sorted(dbt_runner.DBT_PROJECT_DIR.rglob("*")):
        if path.is_file() and path.suffix in {".sql", ".yml", ".yaml", ".py"} and "target" not in path.parts:
            digest.update(str(path.relative_to(dbt_runner.DBT_PROJECT_DIR)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def dbt_project(settings: Settings) -> DbtProject:
    """The project with its manifest for this mode and these settings, parsed again only when the project or
    the vars changed (a parse takes a few seconds; every Dagster run loads the code location)."""
    target = settings.var_dir / "dbt" / f"manifest-{settings.pipeline.mode}"
    target.mkdir(parents=True, exist_ok=True)
    stamp, fingerprint = target / ".parsed", _project_fingerprint(settings)
    # the webserver and the daemon load the code location at the same time: one parses, the other waits
    with open(target / ".parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (stamp.exists() and stamp.read_text() == fingerprint and (target / "manifest.json").exists()):
            args = ["parse", "--quiet", "--target-path", str(target)]
            parsed = dbt_runner.run(settings, args, capture=True, timeout=300)
            if parsed.returncode != 0:
                raise dg.DagsterError(f"dbt parse failed:\n{parsed.stdout[-3000:]}{parsed.stderr[-3000:]}")
            stamp.write_text(fingerprint)
    return DbtProject(project_dir=dbt_runner.DBT_PROJECT_DIR, target_path=target)


@contextmanager
def lake_environment(settings: Settings) -> Iterator[None]:
    """While dbt runs: this process's environment with the lake's paths and DuckDB's limits (lakehouse/dbt_runner.py),
    which the dbt CLI subprocess inherits (DbtCliResource takes no environment of its own), restored after; and
    the turn on the DuckDB file (a `make dbt` may be using it)."""
    wanted = {k: v for k, v in dbt_runner.dbt_env(settings).items() if k.startswith("DBT_")}
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        with dbt_runner.duckdb_turn(wanted):
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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
    pipeline_vars = dbt_runner.dbt_vars(settings)
    translator = LakeTranslator()

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        dagster_dbt_translator=translator,
        exclude=BATCH_SELECTION,
        name="dbt_models",
        pool=POOL,
    )
    def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
        with lake_environment(settings):
            yield from dbt.cli(["build", "--vars", json.dumps(pipeline_vars)], context=context).stream()

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
    def dbt_batch_layer(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
        window = context.partition_time_window
        batch_vars = pipeline_vars | {
            "batch_start": window.start.date().isoformat(),
            "batch_end": window.end.date().isoformat(),
        }
        context.log.info(f"batch layer for [{batch_vars['batch_start']}, {batch_vars['batch_end']})")
        # the batch models read staging views (stg_http_events): create them first, so a day partition runs on
        # a DuckDB file no unpartitioned run has built yet (a fresh var/, a first backfill from the UI)
        upstream = ["run", "--select", f"+{BATCH_SELECTION}", "--exclude", BATCH_SELECTION]
        with lake_environment(settings):
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
            metadata={"table": table.identifier, "partitioned_by": f"day({table.day_partition_on})"},
        )
        for table in contract.BATCH_TABLES
    ]
    return [dbt_models, dbt_batch_layer, *published]
