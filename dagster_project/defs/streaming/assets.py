"""The Flink jobs of `flink_jobs.JOBS`, one asset each: materialising one deploys it, and a run tagged
`pipeline/recovery` only recovers it."""

import dagster as dg

from dagster_project.defs.keys import HTTP_EVENTS_TOPIC, RECOVERY_TAG, job_key
from dagster_project.resources import FlinkResource
from flink_jobs import JOBS


def _job_asset(job: str) -> dg.AssetsDefinition:
    """Materialising the asset deploys the job: it starts (from the newest savepoint or retained checkpoint it
    left), or is upgraded (stop with a savepoint, start the current code from it) when its code changed, or is
    left alone when the running version is current. The asset's code version is the hash of the job's code, so
    the UI marks a job whose checkout changed. A run the job sensor requested (tagged `pipeline/recovery`) only
    recovers: it starts the job from its latest checkpoint if the job should run and still has no active run,
    and leaves a job stopped on purpose stopped. The sensor also records the running job's observations."""
    spec = JOBS[job]

    @dg.asset(
        key=job_key(job),
        deps=[HTTP_EVENTS_TOPIC],
        group_name="streaming",
        kinds={"flink"},
        code_version=FlinkResource.code_version(job),
        description=f"PyFlink job {job}: {spec.description}.",
        metadata={
            "entry": f"flink_jobs/{spec.entry.name}",
            "writes": ", ".join(spec.writes),
            "consumer_group": spec.consumer_group,
        },
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
                "flink_ui": dg.MetadataValue.url(f"{flink.url}/#/job/running/{result.job_id}/overview"),
            }
        )

    return flink_job


flink_job_assets = [_job_asset(job) for job in JOBS]
