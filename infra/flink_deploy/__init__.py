"""The Flink deployer: the PyFlink jobs of `flink_jobs/` on the cluster (embedded or remote), in its parts.

state.py      each job's state file and lock (var/flink/jobs/<name>/)
package.py    what a job is given: its own files zipped (and their code version), its configuration
submit.py     `flink run`: the stream (detached) and a Kappa replay (attached)
cluster.py    Flink's REST API: the active run, stop with a savepoint, the newest restore point
lifecycle.py  deploy, recover, stop
legacy.py     the first start after the Flink 2.0 line
status.py     a job's status, typed (JobStatus)

from infra import flink_deploy
flink_deploy.deploy(settings, "streaming")   # idempotent; upgrades through a savepoint
"""

from __future__ import annotations

from infra.flink_deploy.cluster import ACTIVE_STATES, find_job, latest_restore_point
from infra.flink_deploy.legacy import LEGACY_DIR, LEGACY_JOBS
from infra.flink_deploy.lifecycle import DeployResult, deploy, recover, stop
from infra.flink_deploy.package import code_version, job_config, spec
from infra.flink_deploy.state import busy, job_dir, should_run
from infra.flink_deploy.status import JobStatus, status
from infra.flink_deploy.submit import REPLAYABLE, replay

__all__ = [
    "ACTIVE_STATES",
    "LEGACY_DIR",
    "LEGACY_JOBS",
    "REPLAYABLE",
    "DeployResult",
    "JobStatus",
    "busy",
    "code_version",
    "deploy",
    "find_job",
    "job_config",
    "job_dir",
    "latest_restore_point",
    "recover",
    "replay",
    "should_run",
    "spec",
    "status",
    "stop",
]
