"""Deploy, upgrade and stop the PyFlink jobs of `flink_jobs/` on the cluster (embedded or remote).

A deploy is idempotent: a job already running the current code is left alone; a job running older code is
stopped with a savepoint and started again from it; a job that is not running starts from the newest
savepoint or retained checkpoint it left behind, so `make down` / `make up` loses and repeats nothing.
State of each job (its id, code version, last savepoint, whether it should run) is kept in
var/flink/jobs/<name>/state.json. Starting a job that should run but has ended (cancelled by hand, failed
beyond Flink's own restarts) is a recovery from its latest checkpoint, counted in its state; `recover` does
only that (Dagster's health sensor asks for it). Deploy, recover and stop of one job take its lock, so they
never interleave.

A var/ of the Flink 2.0 line ran three jobs (raw_events, windows, datastream_windows) where this line runs one,
`streaming`. Their savepoints cannot be restored into it (other operators), so its first start takes over
where they stopped instead (`take_over_legacy_jobs`): legacy jobs still running are stopped with a savepoint,
the new job's consumer group starts after the last Kafka offset raw.http_events and raw.dead_letter_events
hold, or where the legacy raw_events committed its last checkpoint if further (nothing read twice, nothing
skipped), and their folders move to var/flink/jobs/legacy-2.0/. The windows open at that moment are counted
from there on only: the README's "Upgrading from the Flink 2.0 line" says to replay that day once it is over.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from config.logs import get_logger
from config.settings import REPO_ROOT, Settings
from event_log.topic import client_config
from flink_jobs import JOBS, PACKAGE_DIR, JobSpec
from infra.install import flink_python, pyflink_dir
from infra.process import ServiceError, wait_until
from infra.services import flink
from lakehouse import contract, iceberg

log = get_logger("infra.flink_jobs")

# the jobs of the Flink 2.0 line that `streaming` replaces
LEGACY_JOBS = ("raw_events", "windows", "datastream_windows")
LEGACY_DIR = "legacy-2.0"
ACTIVE_STATES = {"CREATED", "INITIALIZING", "RUNNING", "RESTARTING", "RECONCILING", "FAILING", "CANCELLING"}


@dataclass(frozen=True)
class DeployResult:
    job: str
    action: str  # "unchanged" | "started" | "upgraded" | "recovered" | "stopped" (recover: stopped on purpose)
    job_id: str
    restored_from: str | None = None


@dataclass(frozen=True)
class JobStatus:
    """A job as the cluster and the deployer's state see it (what Dagster records and checks)."""

    job: str
    state: str  # Flink's job state, or NOT_RUNNING when the cluster has no active run of it
    job_id: str
    should_run: bool  # deployed and not stopped on purpose
    code_version_running: str
    code_version_current: str
    recoveries: int
    last_recovery: dict[str, Any]
    restarts: int = 0  # Flink's own restarts of the running job (its restart strategy)
    last_checkpoint_id: int | None = None
    last_checkpoint_at_ms: int | None = None
    last_checkpoint_path: str = ""
    state_since_ms: int | None = None
    cluster: dict[str, Any] = field(default_factory=dict)  # taskmanagers, slots-total, slots-available

    @property
    def code_current(self) -> bool:
        return self.code_version_running == self.code_version_current


def spec(name: str) -> JobSpec:
    try:
        return JOBS[name]
    except KeyError:
        raise ServiceError(f"unknown Flink job {name!r}; known jobs: {', '.join(sorted(JOBS))}") from None


def job_dir(settings: Settings, name: str) -> Path:
    return flink.flink_home(settings) / "jobs" / name


def code_version(name: str) -> str:
    digest = hashlib.sha256()
    for path in spec(name).source_files():
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def job_config(settings: Settings, name: str) -> dict[str, Any]:
    kafka_props = {k: v for k, v in client_config(settings).items() if k != "bootstrap.servers"}
    return {
        "job_name": name,
        "kafka": {
            "bootstrap_servers": settings.kafka.servers,
            "topic": settings.kafka.topic,
            "group_id": spec(name).consumer_group,
            "properties": kafka_props,
        },
        "iceberg": {
            "catalog_name": settings.iceberg.catalog_name,
            "catalog": settings.iceberg.catalog,
            "uri": settings.catalog_jdbc_uri if settings.iceberg.catalog == "jdbc" else (settings.iceberg.uri or ""),
            "warehouse": settings.warehouse,
            "properties": {**settings.iceberg.properties, **iceberg.jdbc_credentials(settings)},
        },
        "source": {"kind": "kafka"},
        "streaming": settings.streaming.model_dump(),
        "checkpoint_interval_seconds": settings.flink.checkpoint_interval_seconds,
        "parallelism": settings.flink.parallelism,
        "python_execution_mode": settings.flink.python_execution_mode,
    }


def _read_state(settings: Settings, name: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((job_dir(settings, name) / "state.json").read_text())
        return data
    except (FileNotFoundError, ValueError):
        return {}


def _write_state(settings: Settings, name: str, **updates: Any) -> None:
    state = _read_state(settings, name) | updates
    path = job_dir(settings, name) / "state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2, sort_keys=True))


@contextmanager
def job_lock(settings: Settings, name: str) -> Iterator[None]:
    """Hold the job's lock (a file lock beside its state) while deploying or stopping it."""
    path = job_dir(settings, name) / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def should_run(settings: Settings, name: str) -> bool:
    """Whether the job was deployed and not stopped on purpose since (older state files: deployed = should run)."""
    state = _read_state(settings, name)
    return bool(state.get("desired", "running" if state.get("job_id") else "stopped") == "running")


def list_jobs(settings: Settings) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = flink.rest(settings, "GET", "/jobs/overview")["jobs"]
    return jobs


def find_job(settings: Settings, name: str) -> dict[str, Any] | None:
    """The active job of that name, if any (the newest when several exist)."""
    active = [j for j in list_jobs(settings) if j["name"] == name and j["state"] in ACTIVE_STATES]
    return max(active, key=lambda j: j["start-time"]) if active else None


def latest_restore_point(settings: Settings, name: str) -> str | None:
    """The newest of the job's last savepoint and the retained checkpoints of its last run."""
    state = _read_state(settings, name)
    candidates: list[tuple[float, str]] = []
    savepoint = state.get("savepoint")
    if savepoint and (Path(savepoint.removeprefix("file:")) / "_metadata").exists():
        candidates.append((float(state.get("savepoint_at", 0)), savepoint))
    job_id = state.get("job_id")
    if job_id:
        for chk in (flink.checkpoint_dir(settings) / job_id).glob("chk-*"):
            metadata = chk / "_metadata"
            if metadata.exists():
                candidates.append((metadata.stat().st_mtime, str(chk)))
    return max(candidates)[1] if candidates else None


def _package_zip(settings: Settings, name: str) -> Path:
    """The flink_jobs package as a zip next to the job's configuration (files in a fixed order and time, so
    the same code gives the same bytes)."""
    path = job_dir(settings, name) / "flink_jobs.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in spec(name).source_files():
            info = zipfile.ZipInfo(f"flink_jobs/{file.relative_to(PACKAGE_DIR).as_posix()}", (1980, 1, 1, 0, 0, 0))
            archive.writestr(info, file.read_bytes(), zipfile.ZIP_DEFLATED)
    return path


def _flink_run(
    settings: Settings,
    name: str,
    config: dict[str, Any],
    config_name: str,
    *,
    detached: bool,
    timeout: float,
    restore_from: str | None = None,
) -> str:
    """`flink run` the job's entry with `config` against the cluster; the job id it printed."""
    job = spec(name)
    config_path = job_dir(settings, name) / config_name
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.touch(mode=0o600)  # it carries the catalog database's credentials
    config_path.chmod(0o600)
    config_path.write_text(json.dumps(config, indent=2))
    python = str(flink_python(settings))
    argv = [
        "bash",
        str(pyflink_dir(settings) / "bin" / "flink"),
        "run",
        *(["--detached"] if detached else []),
        *flink.cli_target(settings),
        "-py",
        str(job.entry),
        "-pyclientexec",
        python,
        "-pyexec",
        python,
        "-pyfs",  # the Python workers on the TaskManagers import flink_jobs from it
        str(_package_zip(settings, name)),
    ]
    if restore_from:
        argv += ["--fromSavepoint", restore_from]
    argv += ["--config", str(config_path)]
    env = {**os.environ, **flink.flink_env(settings), "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    match = re.search(r"JobID ([0-9a-f]{32})", proc.stdout + proc.stderr)
    if proc.returncode != 0 or not match:
        # keep the Python traceback and the causes; drop Java stack frames
        lines = (proc.stdout + proc.stderr).splitlines()
        output = "\n".join(ln for ln in lines if not ln.lstrip().startswith(("at ", "... ")))[-4000:]
        raise ServiceError(f"Flink job {name} ({config_name}) failed (exit {proc.returncode}):\n{output}")
    return match.group(1)


def _submit(settings: Settings, name: str, restore_from: str | None) -> str:
    log.info("submitting", job=name, restore_from=restore_from or "none")
    return _flink_run(
        settings, name, job_config(settings, name), "config.json", detached=True,
        timeout=settings.flink.submit_timeout_seconds, restore_from=restore_from,
    )  # fmt: skip


REPLAYABLE = tuple(name for name, job in JOBS.items() if job.replayable)


def replay(settings: Settings, name: str, start_ms: int, end_ms: int, timeout: float = 3600) -> str:
    """Kappa replay: run the job's SQL in batch mode on the cluster over raw.http_events of [start_ms, end_ms)
    and overwrite that range's day partitions of its speed tables; wait for the end. Returns the job id."""
    if name not in REPLAYABLE:
        raise ServiceError(f"Flink job {name!r} has no replay; replayable: {', '.join(REPLAYABLE)}")
    if end_ms <= start_ms:
        raise ServiceError(f"replay range is empty: start {start_ms} >= end {end_ms}")
    # the stream still has windows of today open: their replayed rows would be written again when they close
    today_ms = int(time.time() // 86_400 * 86_400 * 1000)
    running = find_job(settings, name)
    if end_ms > today_ms and running is not None and running["state"] == "RUNNING":
        raise ServiceError(
            f"replay of {name} reaches into today (UTC), which its running stream is still writing: its open "
            f"windows would get a second row. Replay closed days, or stop the job first "
            f"(python -m infra down jobs) and deploy it again after the replay"
        )
    config = job_config(settings, name) | {
        "job_name": f"{name}-replay",
        "source": {"kind": "iceberg", "replay_start_ms": start_ms, "replay_end_ms": end_ms},
    }
    started = time.monotonic()
    log.info("replay_started", job=name, start_ms=start_ms, end_ms=end_ms)
    job_id = _flink_run(settings, name, config, "replay.json", detached=False, timeout=timeout)
    log.info("replay_done", job=name, job_id=job_id, seconds=round(time.monotonic() - started, 1))
    return job_id


def _wait_running(settings: Settings, job_id: str, timeout: float = 120) -> None:
    """Until every task runs: a job is RUNNING while its tasks still restore their state (INITIALIZING), and
    a savepoint cannot be taken before they are done."""

    def running() -> bool:
        detail = flink.rest(settings, "GET", f"/jobs/{job_id}")
        if detail["state"] in {"FAILED", "CANCELED", "FINISHED"}:
            raise ServiceError(f"Flink job {job_id} ended as {detail['state']} right after submission")
        tasks = {vertex["status"] for vertex in detail.get("vertices", [])}
        return bool(detail["state"] == "RUNNING" and tasks <= {"RUNNING", "FINISHED"})

    wait_until(running, timeout=timeout, what=f"Flink job {job_id} to run")


def _start(settings: Settings, name: str, restore_from: str | None = None) -> str:
    job_id = _submit(settings, name, restore_from)
    _write_state(
        settings,
        name,
        job_id=job_id,
        code_version=code_version(name),
        deployed_at=time.time(),
        restored_from=restore_from,
        desired="running",
    )
    _wait_running(settings, job_id)
    log.info("job_running", job=name, job_id=job_id)
    return job_id


def stop(settings: Settings, name: str, *, savepoint: bool = True, timeout: float = 120) -> str | None:
    """Stop the job on purpose (it is not recovered until deployed again); with `savepoint`, take one first and
    return its location."""
    with job_lock(settings, name):
        if job_dir(settings, name).joinpath("state.json").exists():
            _write_state(settings, name, desired="stopped")
        return _stop(settings, name, savepoint=savepoint, timeout=timeout)


def _stop(settings: Settings, name: str, *, savepoint: bool, timeout: float = 120) -> str | None:
    job = find_job(settings, name)
    if job is None:
        return None
    job_id = job["jid"]
    location = None
    if savepoint and job["state"] == "RUNNING":
        target = (flink.savepoint_dir(settings) / name).as_uri()
        trigger = flink.rest(
            settings, "POST", f"/jobs/{job_id}/stop", json={"drain": False, "targetDirectory": target}
        )["request-id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = flink.rest(settings, "GET", f"/jobs/{job_id}/savepoints/{trigger}")
            if status["status"]["id"] == "COMPLETED":
                location = _savepoint_location(name, status.get("operation", {}))
                break
            time.sleep(0.5)
    if location is not None:
        _write_state(settings, name, savepoint=location, savepoint_at=time.time())
    # a completed stop-with-savepoint ends the job by itself; without one (none asked, or it failed) cancel it
    if location is None and flink.rest(settings, "GET", f"/jobs/{job_id}")["state"] in ACTIVE_STATES:
        try:
            flink.rest(settings, "PATCH", f"/jobs/{job_id}?mode=cancel")
        except ServiceError:
            if flink.rest(settings, "GET", f"/jobs/{job_id}")["state"] in ACTIVE_STATES:
                raise  # not a job that ended meanwhile

    def gone() -> bool:
        return bool(flink.rest(settings, "GET", f"/jobs/{job_id}")["state"] not in ACTIVE_STATES)

    wait_until(gone, timeout=60, what=f"Flink job {name} to stop")
    log.info("job_stopped", job=name, job_id=job_id, savepoint=location or "none")
    return location


def _savepoint_location(name: str, operation: dict[str, Any]) -> str | None:
    """Where the stop's savepoint is. When the job failed while stopping *after* the savepoint was written,
    Flink reports a failure whose message names the savepoint: it is consistent, and restarting from it
    commits what it holds (Iceberg's committer keeps uncommitted files in its state)."""
    if "failure-cause" not in operation:
        return str(operation["location"])
    cause = json.dumps(operation["failure-cause"])
    found = re.search(r"A savepoint has been created at: (\S+?), but", cause)
    if found:
        log.warning("job_failed_while_stopping", job=name, savepoint=found.group(1))
        return found.group(1)
    log.warning("savepoint_failed", job=name, cause=cause[:300])
    return None


def deploy(settings: Settings, name: str) -> DeployResult:
    with job_lock(settings, name):
        current = code_version(name)
        running = find_job(settings, name)
        if running is not None:
            state = _read_state(settings, name)
            if state.get("job_id") == running["jid"] and state.get("code_version") == current:
                if state.get("desired") != "running":
                    _write_state(settings, name, desired="running")
                return DeployResult(name, "unchanged", running["jid"])
            savepoint = _stop(settings, name, savepoint=True)
            job_id = _start(settings, name, restore_from=savepoint or latest_restore_point(settings, name))
            return DeployResult(name, "upgraded", job_id, savepoint)
        return _start_from_latest(settings, name)


def recover(settings: Settings, name: str, *, by: str = "dagster", reason: str = "no active run") -> DeployResult:
    """Start the job from its latest checkpoint if it should run and has no active run on the cluster (cancelled
    by hand, failed beyond Flink's own restarts, a JobManager that was started again); judged under the job's
    lock, so a job stopped on purpose or deployed meanwhile is left as it is ("stopped" / "unchanged"). `by` and
    `reason` go into the job's state (`last_recovery`), which Dagster's sensor records."""
    with job_lock(settings, name):
        if not should_run(settings, name):
            return DeployResult(name, "stopped", "")
        running = find_job(settings, name)
        if running is not None:
            return DeployResult(name, "unchanged", running["jid"])
        return _start_from_latest(settings, name, by=by, reason=reason)


def busy(settings: Settings, name: str) -> bool:
    """Whether a deploy or stop of the job holds its lock right now (in a process on this machine)."""
    path = job_dir(settings, name) / ".lock"
    if not path.exists():
        return False
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def lake_positions(settings: Settings) -> dict[int, int]:
    """Per partition of the topic, the offset after the last message raw.http_events or raw.dead_letter_events
    holds: where a job that writes both (exactly once, with its offsets) left off."""
    from lakehouse import duckdb_views

    specs = [spec for spec in contract.TABLES if spec.identifier in ("raw.http_events", "raw.dead_letter_events")]
    with duckdb_views.connect(settings, specs) as con:
        rows = con.execute(
            "SELECT kafka_partition, max(kafka_offset) + 1 FROM ("
            " SELECT kafka_partition, kafka_offset FROM raw.http_events UNION ALL"
            " SELECT kafka_partition, kafka_offset FROM raw.dead_letter_events WHERE kafka_offset IS NOT NULL"
            ") GROUP BY 1"
        ).fetchall()
    return {int(partition): int(offset) for partition, offset in rows}


def take_over_legacy_jobs(settings: Settings, name: str) -> dict[str, Any] | None:
    """On the first start of `name` in a var/ of the Flink 2.0 line: stop its legacy jobs (savepoint), start its
    consumer group where raw.http_events ends, move their folders aside. None when there is nothing to take
    over (not the streaming job, a var/ without legacy jobs, or a group that already committed offsets)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    jobs_dir = job_dir(settings, name).parent
    legacy = [old for old in LEGACY_JOBS if (jobs_dir / old / "state.json").exists()]
    if name != "streaming" or not legacy:
        return None
    for old in legacy:
        if find_job(settings, old) is not None:
            _stop(settings, old, savepoint=True)
    group, topic = spec(name).consumer_group, settings.kafka.topic
    admin = AdminClient(client_config(settings))
    listed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(30)
    if any(tp.offset >= 0 for tp in listed.topic_partitions or []):
        return None  # the group has its own position: it ran before
    # what raw.http_events and the dead letters hold, or past it where the legacy raw_events committed further
    # on its last checkpoint (a trailing duplicate it dropped is not in the tables)
    positions = lake_positions(settings)
    legacy_group = "flink-raw_events"
    committed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(legacy_group)])[legacy_group]
    for tp in committed.result(30).topic_partitions or []:
        if tp.topic == topic and tp.offset >= 0:
            positions[tp.partition] = max(positions.get(tp.partition, 0), tp.offset)
    if positions:
        partitions = [TopicPartition(topic, p, offset) for p, offset in sorted(positions.items())]
        admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, partitions)])[group].result(30)
    moved = jobs_dir / LEGACY_DIR
    moved.mkdir(parents=True, exist_ok=True)
    for old in legacy:
        (jobs_dir / old).rename(moved / old)
    taken = {"jobs": legacy, "positions": {str(p): o for p, o in sorted(positions.items())}, "at": time.time()}
    _write_state(settings, name, taken_over=taken)
    log.warning("legacy_jobs_taken_over", job=name, legacy=",".join(legacy), positions=str(taken["positions"]))
    return taken


def _start_from_latest(
    settings: Settings, name: str, *, by: str = "deploy", reason: str = "it should run and had no active run"
) -> DeployResult:
    """Start the job from its newest savepoint or retained checkpoint. When it should have been running (nobody
    stopped it: cancelled by hand, failed for good, a cluster that went away) that is a recovery, counted."""
    lost = should_run(settings, name)
    recoveries = int(_read_state(settings, name).get("recoveries", 0))
    restore = latest_restore_point(settings, name)
    if restore is None:
        take_over_legacy_jobs(settings, name)
    job_id = _start(settings, name, restore_from=restore)
    if not lost:
        return DeployResult(name, "started", job_id, restore)
    recovery = {"by": by, "reason": reason, "at": time.time(), "job_id": job_id, "restored_from": restore}
    _write_state(settings, name, recoveries=recoveries + 1, recovered_at=recovery["at"], last_recovery=recovery)
    log.warning("job_recovered", job=name, job_id=job_id, restored_from=restore or "none", by=by, reason=reason)
    return DeployResult(name, "recovered", job_id, restore)


def status(settings: Settings, name: str) -> JobStatus:
    """What Dagster records of a job: its state on the cluster, Flink's own restarts, the last completed
    checkpoint, the code running vs the checkout's, and how often it was recovered."""
    state = _read_state(settings, name)
    found = find_job(settings, name)
    job_id = found["jid"] if found else state.get("job_id")
    overview = flink.overview(settings)
    detail = JobStatus(
        job=name,
        state=found["state"] if found else "NOT_RUNNING",
        job_id=job_id or "",
        should_run=should_run(settings, name),
        code_version_running=state.get("code_version", "") if found else "",
        code_version_current=code_version(name),
        recoveries=int(state.get("recoveries", 0)),
        last_recovery=state.get("last_recovery") or {},
        cluster={k: overview.get(k) for k in ("taskmanagers", "slots-total", "slots-available")},
    )
    if not found:
        return detail
    timestamps = flink.rest(settings, "GET", f"/jobs/{job_id}").get("timestamps", {})
    metrics = flink.rest(settings, "GET", f"/jobs/{job_id}/metrics?get=numRestarts")
    latest = (flink.rest(settings, "GET", f"/jobs/{job_id}/checkpoints").get("latest") or {}).get("completed") or {}
    return replace(
        detail,
        state_since_ms=timestamps.get(found["state"]),
        restarts=int(next((float(m["value"]) for m in metrics if m["id"] == "numRestarts"), 0)),
        last_checkpoint_id=latest.get("id"),
        last_checkpoint_at_ms=latest.get("latest_ack_timestamp"),
        last_checkpoint_path=latest.get("external_path", ""),
    )
