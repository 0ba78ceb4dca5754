"""`FlinkResource`: the Flink cluster, and the PyFlink jobs deployed on it through the platform's deployer
(`infra.flink_deploy`), which reaches the cluster at the REST endpoint the resource's fields name."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from config.settings import Settings, load_settings
from infra import flink_deploy
from infra.flink_deploy import DeployResult, JobStatus


class FlinkResource(dg.ConfigurableResource):
    """The Flink cluster's REST endpoint (the `flink` section: `rest_url`, or `host` and `rest_port` of the
    embedded cluster) and the jobs of `flink_jobs.JOBS` on it; the same calls work against a remote cluster."""

    host: str = Field(description="Host of the embedded cluster's REST API (flink.host).")
    rest_port: int = Field(description="Port of the embedded cluster's REST API (flink.rest_port).")
    rest_url: str | None = Field(default=None, description="The REST API's URL when set, e.g. a remote cluster's.")

    def pipeline_settings(self) -> Settings:
        """The pipeline's configuration with this cluster's endpoint: what the deployer is given."""
        return load_settings(flink={"host": self.host, "rest_port": self.rest_port, "rest_url": self.rest_url})

    @property
    def url(self) -> str:
        """The REST API's (and the web UI's) address."""
        return self.pipeline_settings().flink.url

    def deploy(self, job: str) -> DeployResult:
        """Start, upgrade (through a savepoint) or leave alone the job: idempotent."""
        return flink_deploy.deploy(self.pipeline_settings(), job)

    def recover(self, job: str) -> DeployResult:
        """Start the job from its latest checkpoint if it should run and has no active run."""
        return flink_deploy.recover(self.pipeline_settings(), job)

    def busy(self, job: str) -> bool:
        """Whether a deploy or stop of the job is under way (it holds the job's lock)."""
        return flink_deploy.busy(self.pipeline_settings(), job)

    def status(self, job: str) -> JobStatus:
        return flink_deploy.status(self.pipeline_settings(), job)

    def replay(self, job: str, start_ms: int, end_ms: int) -> str:
        """A Kappa replay of the job's windows over [start_ms, end_ms) of raw.http_events; its Flink job id."""
        return flink_deploy.replay(self.pipeline_settings(), job, start_ms, end_ms)

    @staticmethod
    def code_version(job: str) -> str:
        """The hash of the job's code in this checkout (what a deploy compares with the running one)."""
        return flink_deploy.code_version(job)
