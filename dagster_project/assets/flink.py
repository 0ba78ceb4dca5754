"""The streaming jobs, one asset each. Materialising one deploys it: it starts (from the newest savepoint or
retained checkpoint it left), or is upgraded (stop with a savepoint, start the current code from it) when its
code changed, or is left alone when the running version is current. The asset's code version is the hash of
the job's code, so the UI marks a job whose checkout changed. A run the health sensor (sensors.py) requested,
tagged `pipeline/recovery`, only recovers: it starts the job from its latest checkpoint if the job should run
and still has no active run, and leaves a job stopped on purpose stopped. Observations of the running job
(state, last checkpoint, restarts) come from that sensor too."""

import dagster as dg

from dagster_project.assets.kafka import HTTP_EVENTS_TOPIC
from dagster_project.resources import FlinkResource
from flink_jobs import JOBS
from infra.services.flink_jobs import code_version

RECOVERY_TAG = "pipeline/recovery"


def job_key(job: str) -> dg.AssetKey:
    return dg.AssetKey(["flink", job])


def _job_asset(job: str) -> dg.AssetsDefinition:
    spec = JOBS[job]

    @dg.asset(
        key=job_key(job),
        deps=[HTTP_EVENTS_TOPIC],
        group_name="streaming",
        kinds={"flink"},
        code_version=code_version(job),
        description=f"PyFlink job {job}: {spec.description}.",
        metadata={"entry": f"flink_jobs/{spec.entry.name}", "writes": ", ".join(spec.writes)},
    )
    def flink_job(context: dg.AssetExecutionContext, flink: FlinkResource) -> dg.MaterializeResult:
        recovery = context.run.tags.get(RECOVERY_TAG) == job
        result = flink.recover(job) if recovery else flink.deploy(job)
        context.log.info(f"{job}: {result.action} (job {result.job_id}, restored from {result.restored_from})")
        return dg.MaterializeResult(
            metadata={
                "action": result.action,
                "job_id": result.job_id,
                "restored_from": result.restored_from or "",
                "code_version": flink.code_version(job),
                "flink_ui": dg.MetadataValue.url(f"{flink.rest_url}/#/job/running/{result.job_id}/overview"),
            }
        )

    return flink_job


flink_job_assets = [_job_asset(job) for job in JOBS]
