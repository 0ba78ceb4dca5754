"""`make up` on real services: Kafka (KRaft), a Flink cluster running the streaming job, the Iceberg catalog,
Dagster, the demo app and its traffic; known events in, exactly those events out; `make down` leaves
nothing behind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer

from config.settings import REPO_ROOT
from event_log.topic import client_config, topic_end_offsets
from flink_jobs import JOBS
from infra import flink_deploy, supervision
from infra.process import ServiceError, _alive, _group_members
from infra.services import dagster, flink
from lakehouse import duckdb_views, iceberg
from tests.integration.known_events import event, expected_per_minute, per_minute, produce, raw_count
from tests.waiting import wait_for

pytestmark = pytest.mark.slow


def test_up_serves_every_service(stack):
    s = stack.settings
    info = httpx.get(f"http://{s.dagster.host}:{s.dagster.port}/server_info", timeout=10)
    assert info.status_code == 200 and info.json()["dagster_version"]
    overview = flink.overview(s)
    assert overview["taskmanagers"] == 1
    assert overview["jobs-running"] >= 1
    for name in JOBS:
        job = flink_deploy.find_job(s, name)
        assert job is not None and job["state"] == "RUNNING", name
    assert httpx.get(f"http://{s.demo.host}:{s.demo.port}/healthz", timeout=5).status_code == 200


def test_known_events_land_exactly_once_in_raw_http_events(stack):
    s = stack.settings
    service = f"itest-{uuid.uuid4().hex[:8]}"
    events = [event(service, i) for i in range(500)]
    malformed = [
        b"{not json",
        b'"a string"',
        json.dumps({"event_id": f"{service}-bad", "service": service}).encode(),
    ]
    produce(s, events)
    producer = Producer(client_config(s))
    for payload in malformed:
        producer.produce(s.kafka.topic, payload)
    assert producer.flush(30) == 0

    catalog = iceberg.load(s)
    expected = {e["event_id"] for e in events}

    def landed():
        table = catalog.load_table("raw.http_events")
        rows = table.scan(row_filter=f"service == '{service}'", selected_fields=("event_id",)).to_arrow()
        ids = rows["event_id"].to_pylist()
        return ids if len(ids) >= len(expected) else None

    ids = wait_for(landed, 120, "the known events in raw.http_events")
    time.sleep(5)  # a few more checkpoints: nothing may arrive twice
    ids = landed()
    assert len(ids) == len(expected)
    assert set(ids) == expected

    def dead_letters():
        table = catalog.load_table("raw.dead_letter_events")
        rows = table.scan().to_arrow().to_pylist()
        mine = [r for r in rows if r["payload"].encode() in malformed]
        return mine if len(mine) >= len(malformed) else None

    rows = wait_for(dead_letters, 60, "the malformed messages in raw.dead_letter_events")
    reasons = {r["payload"]: r["error_reason"] for r in rows}
    assert len(rows) == len(malformed)
    assert reasons["{not json"] == "not a JSON object"
    assert reasons['"a string"'] == "not a JSON object"
    assert reasons[malformed[2].decode()] == "missing event_time"
    assert all(r["kafka_offset"] is not None and r["kafka_partition"] is not None for r in rows)


def test_traffic_flows_into_the_topic_and_the_table(stack):
    s = stack.settings
    catalog = iceberg.load(s)

    def demo_rows() -> int:
        table = catalog.load_table("raw.http_events")
        return table.scan(row_filter=f"service == '{s.demo.service_name}'", selected_fields=("event_id",)).count()

    offsets_before = sum(topic_end_offsets(s).values())
    first = wait_for(demo_rows, 120, "demo traffic in raw.http_events")
    wait_for(lambda: demo_rows() > first, 60, "raw.http_events to grow")
    assert sum(topic_end_offsets(s).values()) > offsets_before


def test_second_up_starts_nothing_twice(stack):
    before = stack.pids()
    started = time.monotonic()
    proc = stack.cli("up", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert stack.pids() == before
    assert "flink job streaming: unchanged" in proc.stdout
    assert time.monotonic() - started < 90


def test_status_reports_every_service(stack):
    proc = stack.cli("status", timeout=120)
    assert proc.returncode == 0
    for name in (
        "kafka",
        "flink-jobmanager",
        "flink-taskmanager",
        "dagster-code-server",
        "dagster-webserver",
        "dagster-daemon",
        "demo-app",
        "traffic",
    ):
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(name + " "))
        assert " running " in line and "ok" in line, line
    job_line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("job streaming"))
    assert " running " in job_line and "ok (" in job_line, job_line
    assert proc.stdout.rstrip().endswith("stack: healthy")
    # the same as JSON, for scripts and monitors: each process's state, PID, uptime, restarts, last exit, health
    report = json.loads(stack.cli("status", "--json", timeout=120).stdout)
    assert report["healthy"] and report["running"]
    processes = {s["name"]: s for s in report["services"]}
    supervisor = processes["supervisor"]
    assert supervisor["state"] == "running" and supervisor["pid"] == stack.pids()["supervisor"], supervisor
    for name in ("kafka", "postgres", "flink-jobmanager", "flink-taskmanager", "dagster-daemon", "traffic"):
        entry = processes[name]
        assert entry["state"] == "running" and entry["healthy"] and entry["pid"] == stack.pids()[name], entry
        assert entry["restarts"] == 0 and entry["last_exit"] is None and entry["uptime_seconds"] > 0, entry
    assert [(j["name"], j["state"], j["healthy"]) for j in report["jobs"]] == [("streaming", "running", True)]


def _code_server_workers(pgid: int) -> set[int]:
    """The `dagster api grpc` processes (code servers holding the definitions) of a service's process group."""
    found = set()
    for pid in _group_members(pgid):
        try:
            if b"api\0grpc" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(pid)
        except OSError:
            continue
    return found


def test_the_webserver_and_the_daemon_share_one_code_server_which_the_uis_reload_restarts(stack):
    s = stack.settings
    pids = stack.pids()
    assert not _code_server_workers(pids["dagster-webserver"]) and not _code_server_workers(pids["dagster-daemon"])
    [worker] = _code_server_workers(pids["dagster-code-server"])
    # what the UI's "Reload" button sends
    mutation = (
        f'mutation {{ reloadRepositoryLocation(repositoryLocationName: "{dagster.LOCATION_NAME}") {{'
        " __typename ... on WorkspaceLocationEntry { locationOrLoadError { __typename } } } }"
    )
    reply = httpx.post(f"http://{s.dagster.host}:{s.dagster.port}/graphql", json={"query": mutation}, timeout=180)
    entry = reply.json()["data"]["reloadRepositoryLocation"]
    assert entry["__typename"] == "WorkspaceLocationEntry", entry
    assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
    wait_for(
        lambda: len(workers := _code_server_workers(pids["dagster-code-server"])) == 1 and worker not in workers,
        60,
        "the code server's worker to be replaced by a new one",
    )


def test_injected_late_and_malformed_messages_land_where_they_belong(stack):
    s = stack.settings
    catalog = iceberg.load(s)

    service = f"{s.demo.service_name}-injected"

    def counts() -> tuple[int, int]:
        late = catalog.load_table("raw.http_events").scan(
            row_filter=f"service == '{service}'", selected_fields=("event_id",)
        )
        dead = catalog.load_table("raw.dead_letter_events").scan(selected_fields=("payload",))
        return late.count(), dead.count()

    def late_rows() -> dict[tuple[str, str], int]:
        rows = catalog.load_table("raw.late_events").scan(
            row_filter=f"service == '{service}'", selected_fields=("job_name", "window_name")
        )
        found: dict[tuple[str, str], int] = {}
        for row in rows.to_arrow().to_pylist():
            key = (row["job_name"], row["window_name"])
            found[key] = found.get(key, 0) + 1
        return found

    late_before, dead_before = counts()
    for kind, count in (("late", 5), ("malformed", 7)):
        inject = ["--inject", kind, "--count", str(count), "--lateness-seconds", "7200"]
        proc = subprocess.run(
            [sys.executable, "-m", "demo.traffic", *inject],
            cwd=REPO_ROOT, env={**stack.env, "PIPELINE_DEMO__SERVICE_NAME": service},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
    # raw.http_events keeps late events (the batch layer and replays need them); malformed ones are dead letters
    wait_for(lambda: counts() == (late_before + 5, dead_before + 7) or None, 90, "injected messages in Iceberg")
    # each window that could not count them says so, once per event: the SQL windows and the DataStream
    # minute window (they are not funnel requests, so the funnel has no opinion)
    expected = {("streaming", "sql_windows"): 5, ("streaming", "requests_per_route_minute"): 5}
    wait_for(lambda: late_rows() == expected or None, 90, "the late events in raw.late_events")
    time.sleep(6)  # a few more checkpoints: nothing arrives twice
    assert late_rows() == expected


def test_dbt_builds_on_the_stacks_lake_in_both_modes(stack):
    """`python -m infra dbt build` over what the running pipeline wrote (Kafka -> the cluster's jobs -> Iceberg
    in the stack's catalog): every model and test passes; the marts count every event of a service that no
    longer receives traffic exactly as raw.http_events holds it; Lambda publishes the batch layer for today."""
    s = stack.settings
    kappa = stack.cli("dbt", "build", timeout=900)
    assert kappa.returncode == 0, kappa.stdout[-4000:]
    assert "ERROR=0" in kappa.stdout, kappa.stdout[-4000:]
    duckdb_file = str(s.var_dir / "dbt" / "lake.duckdb")
    with duckdb_views.connect(s) as con:
        raw = dict(con.sql("SELECT service, count(*) FROM raw.http_events GROUP BY 1").fetchall())
        con.execute(f"ATTACH '{duckdb_file}' AS analytics (READ_ONLY)")
        mart = "SELECT service, sum(request_count) FROM analytics.api_health_daily GROUP BY 1"
        marts = dict(con.sql(mart).fetchall())
    finished = {service for service in raw if service != s.demo.service_name}  # the tests' own services
    assert finished and {sv: marts.get(sv) for sv in finished} == {sv: raw[sv] for sv in finished}

    today = datetime.now(UTC).date()
    # yesterday too (late events injected 2 hours back, after midnight); the stream's windows of the last
    # minutes are still open, so the reconciliation of a day in progress differs: no tolerance here
    day = f"batch_start: {today - timedelta(days=1)}, batch_end: {today + timedelta(days=1)}"
    lambda_ = stack.cli(
        "dbt", "build", "--vars", f"{{pipeline_mode: lambda, {day}, reconciliation_tolerance: 1}}", timeout=900
    )
    assert lambda_.returncode == 0, lambda_.stdout[-4000:]
    published = iceberg.load(s).load_table("batch.requests_per_route_minute").scan().to_arrow().to_pylist()
    per_service: dict[str, int] = {}
    for row in published:
        per_service[row["service"]] = per_service.get(row["service"], 0) + row["request_count"]
    assert {sv: per_service.get(sv) for sv in finished} == {sv: raw[sv] for sv in finished}


def test_counts_stay_exact_when_the_taskmanager_is_killed_and_a_replay_gives_them_again(stack):
    """Known events in, half before and half after a SIGKILL of the TaskManager (the supervisor starts a new one):
    the jobs restore from their last checkpoint and re-read Kafka from there; raw.http_events and the minute
    windows (SQL and DataStream) hold each event exactly once. An upgrade of the job (stop with a
    savepoint, start from it) keeps them exact. Then a Kappa replay of the day gives the same rows."""
    s = stack.settings
    service = f"kill-{uuid.uuid4().hex[:8]}"
    first = [event(service, i) for i in range(300)]
    produce(s, first)
    wait_for(lambda: raw_count(s, service) > 0, 120, "the first events in raw.http_events")
    taskmanager = stack.pids()["flink-taskmanager"]
    os.killpg(taskmanager, signal.SIGKILL)
    # the supervisor starts a TaskManager again; the jobs recover by themselves
    wait_for(lambda: stack.pids().get("flink-taskmanager") not in (None, taskmanager), 120, "a new TaskManager")
    second = [event(service, i) for i in range(300, 600)]
    produce(s, second)
    events = first + second
    expected = expected_per_minute(events)

    def route_minute_total() -> int:
        sql = f"SELECT sum(request_count) FROM speed.requests_per_route_minute WHERE service = '{service}'"
        with duckdb_views.connect(s) as con:
            return int(con.sql(sql).fetchone()[0] or 0)  # type: ignore[index]

    # the windows close once the demo traffic moves the watermark past the last minute
    wait_for(
        lambda: raw_count(s, service) == len(events) and per_minute(s, service) == expected,
        240,
        "exact counts after the kill",
    )
    wait_for(lambda: route_minute_total() == len(events), 120, "the DataStream minute windows")
    time.sleep(6)  # a few more checkpoints: nothing may arrive twice
    assert raw_count(s, service) == len(events)
    assert per_minute(s, service) == expected
    assert route_minute_total() == len(events)
    overview = {name: flink_deploy.find_job(s, name) for name in JOBS}
    assert all(job is not None and job["state"] == "RUNNING" for job in overview.values()), overview

    # an upgrade: the deployer finds other code running (the recorded code version stands for an older
    # checkout), stops the job with a savepoint and starts the current code from it; its keyed window state
    # comes back by operator uid: the windows it had open still count their earlier events, none twice
    state_file = flink_deploy.job_dir(s, "streaming") / "state.json"
    state_file.write_text(json.dumps(json.loads(state_file.read_text()) | {"code_version": "older-checkout"}))
    upgrade = flink_deploy.deploy(s, "streaming")
    assert upgrade.action == "upgraded" and upgrade.restored_from, upgrade
    third = [event(service, i) for i in range(600, 700)]
    produce(s, third)
    events += third
    expected = expected_per_minute(events)
    wait_for(lambda: route_minute_total() == len(events), 240, "the DataStream minute windows after the upgrade")
    wait_for(
        lambda: raw_count(s, service) == len(events) and per_minute(s, service) == expected,
        120,
        "exact counts after it",
    )
    time.sleep(6)
    assert route_minute_total() == len(events)

    # Kappa: the same window SQL in batch mode over raw.http_events of the day(s) rewrites those partitions of
    # speed.*; for these events (none of them late) the replay gives exactly the streaming run's rows. Today is
    # still being written by the stream: the replay refuses while the job runs (its open windows would get a
    # second row), and runs once the job is stopped.
    first_day = min(minute for minute, _ in expected).replace(hour=0, minute=0)
    last_day = max(minute for minute, _ in expected).replace(hour=0, minute=0)
    start_ms, end_ms = int(first_day.timestamp() * 1000), int(last_day.timestamp() * 1000) + 86_400_000
    with pytest.raises(ServiceError, match="reaches into today"):
        flink_deploy.replay(s, "streaming", start_ms, end_ms)
    flink_deploy.stop(s, "streaming")
    flink_deploy.replay(s, "streaming", start_ms, end_ms)
    assert per_minute(s, service) == expected


def _heap_filler(workdir: Path) -> Path:
    """tests/integration/heap_filler/ built into a jar (javac and jar of the JDK on PATH)."""
    source = Path(__file__).parent / "heap_filler"
    out = workdir / "classes"
    subprocess.run(["javac", "-d", str(out), str(source / "HeapFiller.java")], check=True, capture_output=True)
    jar = workdir / "heap-filler.jar"
    subprocess.run(
        ["jar", "--create", "--file", str(jar), "--manifest", str(source / "MANIFEST.MF"), "-C", str(out), "."],
        check=True,
        capture_output=True,
    )
    return jar


def test_a_taskmanager_out_of_heap_ends_and_the_supervisor_brings_it_back_from_its_checkpoint(stack, tmp_path):
    """docs/operations.md, "Out of memory": the TaskManager's heap runs out for real (an agent attached to its JVM
    fills it), the JVM ends by itself (-XX:+ExitOnOutOfMemoryError) while events keep arriving; the supervisor
    records the exit with its reason and starts a TaskManager again, the job restores from its latest checkpoint,
    and every event is counted exactly once. (One that runs out again on every restore is given up on after
    supervisor.restart_budget restarts: tests/unit/test_supervisor.py.)"""
    s = stack.settings
    # the job runs (a test before this one may have stopped it), from its own checkpoints
    assert flink_deploy.deploy(s, "streaming").action in ("started", "recovered", "unchanged")
    service = f"oom-{uuid.uuid4().hex[:8]}"
    first = [event(service, i) for i in range(200)]
    produce(s, first)
    wait_for(lambda: raw_count(s, service) == len(first) or None, 120, "the first events in raw.http_events")
    job = flink_deploy.find_job(s, "streaming")
    assert job is not None
    group = stack.pids()["flink-taskmanager"]

    def taskmanager_jvm() -> list[int]:  # the group's short-lived shells come and go meanwhile
        found = []
        for pid in _group_members(group):
            with contextlib.suppress(OSError):
                if "TaskManagerRunner" in Path(f"/proc/{pid}/cmdline").read_text():
                    found.append(pid)
        return found

    java = taskmanager_jvm()
    assert len(java) == 1, java
    log_file = s.log_dir / "flink-taskmanager.log"
    logged_before = log_file.stat().st_size

    subprocess.run(["java", "-cp", str(_heap_filler(tmp_path)), "HeapFiller", str(java[0])], check=True, timeout=60)
    wait_for(lambda: not _alive(java[0]) or None, 120, "the TaskManager to end on its own")
    with open(log_file, "rb") as log:
        log.seek(logged_before)
        assert b"Terminating due to java.lang.OutOfMemoryError: Java heap space" in log.read()

    second = [event(service, i) for i in range(200, 400)]
    produce(s, second)  # while no TaskManager runs, or a new one starts

    def recorded_exit() -> dict[str, object] | None:
        entry = supervision.read_state(s)["services"]["flink-taskmanager"]
        return entry["last_exit"] if entry["state"] == "running" and entry["pid"] not in java else None

    last_exit = wait_for(recorded_exit, 120, "the supervisor to start the TaskManager again")
    assert last_exit["status"] == "exit code 3" and str(last_exit["reason"]).startswith("OutOfMemoryError"), last_exit

    events = first + second
    expected = expected_per_minute(events)
    wait_for(
        lambda: raw_count(s, service) == len(events) and per_minute(s, service) == expected,
        240,
        "exact counts after the TaskManager came back",
    )
    time.sleep(6)  # a few more checkpoints: nothing may arrive twice
    assert raw_count(s, service) == len(events)
    assert per_minute(s, service) == expected
    # the same job, restored from a checkpoint (not started afresh)
    running = flink_deploy.find_job(s, "streaming")
    assert running is not None and running["jid"] == job["jid"], (job, running)
    restored = flink.rest(s, "GET", f"/jobs/{job['jid']}/checkpoints")["latest"]["restored"]
    assert restored is not None and not restored["is_savepoint"], restored


def test_a_var_of_the_flink_2_0_line_is_taken_over_without_reading_anything_twice(stack):
    """`make up` in a var/ of the Flink 2.0 line: its jobs raw_events, windows and datastream_windows (stopped with
    savepoints by that release's `make down`) and their consumer group, no `streaming` job yet. The streaming job
    starts where raw.http_events ends: the events that arrived meanwhile land once, nothing before them again
    (without the take-over it would read the topic from its start and write every event a second time)."""
    from confluent_kafka.admin import AdminClient

    s = stack.settings
    service = f"legacy-{uuid.uuid4().hex[:8]}"
    first = [event(service, i) for i in range(200)]
    # what the old release left: its raw_events job had read and written these, then `make down` stopped it
    # (the job may already run: the test before this one leaves it running)
    assert flink_deploy.deploy(s, "streaming").action in ("started", "recovered", "unchanged")
    produce(s, first)
    wait_for(lambda: raw_count(s, service) == len(first) or None, 120, "the first events in raw.http_events")
    flink_deploy.stop(s, "streaming")
    jobs_dir = flink_deploy.job_dir(s, "streaming").parent
    state = json.loads((jobs_dir / "streaming" / "state.json").read_text())
    shutil.rmtree(jobs_dir / "streaming")
    for old in flink_deploy.LEGACY_JOBS:  # their savepoints cannot be restored into the new job
        (jobs_dir / old).mkdir()
        (jobs_dir / old / "state.json").write_text(json.dumps(state | {"desired": "stopped"}))
    group = flink_deploy.spec("streaming").consumer_group
    admin = AdminClient(client_config(s))  # kept: a future outlives no client
    admin.delete_consumer_groups([group])[group].result(30)
    second = [event(service, i) for i in range(200, 400)]
    produce(s, second)  # while the upgrade happens

    proc = stack.cli("up", "jobs", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "flink job streaming: started" in proc.stdout, proc.stdout[-2000:]
    taken = json.loads((jobs_dir / "streaming" / "state.json").read_text())["taken_over"]
    assert taken["jobs"] == list(flink_deploy.LEGACY_JOBS) and taken["positions"]
    assert sorted(p.name for p in (jobs_dir / flink_deploy.LEGACY_DIR).iterdir()) == sorted(flink_deploy.LEGACY_JOBS)
    assert not any((jobs_dir / old).exists() for old in flink_deploy.LEGACY_JOBS)
    wait_for(lambda: raw_count(s, service) == 400 or None, 180, "the events sent during the upgrade")
    time.sleep(6)  # a few more checkpoints

    def rows_and_ids() -> tuple[int, int]:
        with duckdb_views.connect(s) as con:
            row = con.sql("SELECT count(*), count(DISTINCT event_id) FROM raw.http_events").fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    total, distinct = rows_and_ids()
    assert raw_count(s, service) == 400 and total == distinct, (total, distinct)


def test_down_leaves_no_process_and_no_port(stack):
    s = stack.settings
    groups = stack.pids()
    members = {pid for pgid in groups.values() for pid in _group_members(pgid)} | set(groups.values())
    ports = [
        s.kafka.port,
        s.kafka.controller_port,
        s.flink.rest_port,
        s.flink.rpc_port,
        s.dagster.port,
        s.demo.port,
    ]
    assert "supervisor" in groups
    proc = stack.cli("down", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list(s.run_dir.glob("*.pid"))
    assert [p for p in members if _alive(p)] == []
    time.sleep(5)  # longer than the supervisor's backoff: nothing starts again what `down` stopped
    assert not list(s.run_dir.glob("*.pid")) and supervision.wanted(s) == []
    status = stack.cli("status", timeout=120)
    assert status.returncode == 3 and "stack: stopped" in status.stdout, status.stdout[-2000:]
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listening"
    # the job was stopped with a savepoint, so the next `up` resumes where this one ended
    state = json.loads((flink_deploy.job_dir(s, "streaming") / "state.json").read_text())
    assert state["savepoint"]
