"""Streaming benchmark: the goals of the streaming issue, measured side by side in one run. JSON out.

- **throughput**: events/s of the `streaming` job (every table of the stream: raw.http_events, dead letters, late
  events, the SQL windows and the DataStream windows) at parallelism 1 and 2 on a local Flink mini-cluster (the
  way `tests/flink/` runs it, with the configuration the deployer renders) over a bounded file of N synthetic
  events (event times increasing, a few services, routes and users, some 5xx, the checkout-funnel routes), and
  over a tiny file (10 events) for the fixed cost. The time of a run is from the moment all its tasks are
  RUNNING (the mini-cluster's own log: JVM, planning, deployment and Python workers are behind it) to its last
  Iceberg commit (the sinks commit when the input ends), so events/s = N / (t_N - t_tiny). The same from
  starting the job's process is reported too, but on a shared machine its start-up (11-32 s measured) is
  noisier than the processing itself. Each run writes into a fresh lake (own catalog name and warehouse) of one
  sandboxed catalog database (`python -m infra up catalog`). Checked against the file: every event in
  raw.http_events once, no dead letter, none late (for any window), and every event counted in each window
  table (the 5-minute HOP five times, the day's CUMULATE once in its whole-day window, the checkout funnels once
  per funnel request). Ratio: events/s at p2 / at p1 (one file: one source reader, the rest in parallel).
- **freshness**: a sandboxed stack (`python -m infra up`, demo traffic at 1 request/s, checkpoints at the
  default 10 s); events are produced straight to the topic at 1,000/s for 120 s (event time = the time of
  `produce()`, their own service name), after a 15 s warm-up at the same rate under another service name.
  Latency "event time -> visible in Iceberg" of an event = commit time of the first snapshot holding its row
  minus its event time: for `raw.http_events` from the data files each snapshot added (their `event_time`); for
  `speed.api_requests_per_minute` (and the DataStream `speed.requests_per_route_minute_firings`) per event, the
  commit of its window's row minus the event's own time, plus per window row the commit minus `window_end`.
  p50/p99 against the goals (p50 <= 30 s, p99 <= 60 s at 1,000 events/s); the job must still be RUNNING.
- **replay**: a day of generated traffic (`rate` events/s on average over one UTC day) appended straight into
  `raw.http_events` of a sandboxed lake with pyiceberg (an Arrow table built from the table's current schema,
  nulls for the columns not generated), then the Kappa replay of that day of the `streaming` job's SQL windows on
  a sandboxed cluster (`infra.flink_deploy.replay`, what `python -m infra replay streaming DAY` runs).
  Multiple of real time = 86,400 s / replay seconds; checked: the day's per-minute `request_count`s add up to the
  rows written.

Each part starts and stops its own sandbox (a scratch var/ on free ports; never more than one Flink at a time),
so it runs beside a developer's own `make up`. Installs are assumed done (`make install`).

    python -m bench.streaming                  # all three parts
    python -m bench.streaming throughput       # or freshness, or replay (several may be named)
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench import stack
from config.settings import REPO_ROOT, Settings, load_settings
from infra import install
from lakehouse import contract, iceberg

JOB = "streaming"
PARALLELISMS = (1, 2)
# A mini-cluster keeps checkpoints in the JobManager's memory, at most 5 MB, and a bounded run takes a final
# checkpoint when its input ends: past ~80,000 events the event_id de-duplication state outgrows it and the run
# fails. Over a file the job's Python DataStream part runs one element per bundle
# (flink_jobs/datastream_windows.py), far slower per element than on the cluster; it is fed one row per second,
# service and route plus each funnel request (flink_jobs/sql/datastream_inputs.sql), about 0.45 elements per
# event of this file (100 events per second of event time, ~21 % of them funnel requests).
EVENTS = 60_000
TINY_EVENTS = 10
RUN_TIMEOUT_S = 900
FRESHNESS_P50_GOAL_S = 30.0
FRESHNESS_P99_GOAL_S = 60.0
# (method, route template, weight); the funnel routes so the DataStream funnel operator has work
ROUTES: tuple[tuple[str, str, int], ...] = (
    ("GET", "/products", 30),
    ("GET", "/products/{product_id}", 25),
    ("GET", "/search", 15),
    ("POST", "/login", 5),
    ("POST", "/cart/items", 9),
    ("POST", "/checkout", 7),
    ("POST", "/payments", 5),
    ("GET", "/errors/boom", 4),
)
SERVICES = ("shop", "search", "accounts")
DAY_S = 86_400


# ---- shared helpers ----


@contextmanager
def _sandbox(prefix: str, components: tuple[str, ...] = (), **overrides: str) -> Iterator[Settings]:
    """bench.stack's sandboxed stack, for what needs only its settings."""
    with stack.sandboxed(prefix, components, **overrides) as st:
        yield st.settings


def _event(service: str, at: float, rng: random.Random, users: int = 500) -> dict[str, Any]:
    from demo.traffic import USER_AGENTS
    from interceptor.events import SCHEMA_VERSION, rfc3339_millis

    method, route, _ = rng.choices(ROUTES, weights=[w for _, _, w in ROUTES])[0]
    status = 500 if route == "/errors/boom" else rng.choices((200, 404, 503), weights=(95, 3, 2))[0]
    item = rng.randint(1, 200)
    return {
        "event_id": uuid.uuid4().hex, "event_time": rfc3339_millis(at), "service": service, "method": method,
        "route": route, "path": route.replace("{product_id}", str(item)), "status_code": status,
        "duration_ms": round(rng.lognormvariate(3, 0.8), 3), "user_id": f"u{rng.randint(1, users)}",
        "user_agent": rng.choice(USER_AGENTS), "schema_version": SCHEMA_VERSION,
    }  # fmt: skip


def _percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks of a sorted list."""
    rank = (len(ordered) - 1) * q
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_s": None, "p99_s": None, "max_s": None}
    ordered = sorted(values)
    return {
        "p50_s": round(_percentile(ordered, 0.50), 2),
        "p99_s": round(_percentile(ordered, 0.99), 2),
        "max_s": round(ordered[-1], 2),
    }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _local_path(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def _sum(table: Any, column: str, row_filter: str = "True") -> int:
    arrow = table.scan(row_filter=row_filter, selected_fields=(column,)).to_arrow()
    return int(pc.sum(arrow.column(column)).as_py() or 0)


# ---- throughput: the streaming job on a local mini-cluster over a bounded file ----


def _messages_file(root: Path, count: int, seed: int = 7) -> Path:
    path = root / f"events-{count}.jsonl"
    if path.exists():
        return path
    rng = random.Random(seed)
    start = datetime(2026, 11, 25, tzinfo=UTC).timestamp()
    # 100 events per second of event time, increasing: no event is late
    with path.open("wb") as out:
        for i in range(count):
            out.write(orjson.dumps(_event(SERVICES[i % len(SERVICES)], start + i / 100, rng)) + b"\n")
    return path


def _all_tasks_running_at(log_dir: Path) -> float | None:
    """When the last task of the run's job switched to RUNNING (epoch seconds), from the mini-cluster's log:
    from then on it only processes events (its JVM, planning, deployment and Python workers are all started)."""
    times = [
        datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()  # log4j writes local time
        for log in log_dir.glob("*.log")
        for line in log.read_text(errors="replace").splitlines()
        if "switched from INITIALIZING to RUNNING" in line and "executiongraph.ExecutionGraph" in line
    ]
    return max(times) if times else None


def _run_on_mini_cluster(
    settings: Settings, root: Path, job: str, source: Path, parallelism: int, name: str
) -> tuple[float, float | None, Settings]:
    """Run the job's entry (flink_jobs/<entry>.py) over `source` into a fresh lake. Seconds from starting its
    process to its last Iceberg commit, seconds from all its tasks running to that commit, and the lake's
    settings."""
    from flink_jobs import JOBS
    from infra import flink_deploy

    lake = load_settings(iceberg={"catalog_name": name, "warehouse": (root / name).as_uri()})
    iceberg.ensure_tables(lake)
    # the configuration the deployer renders for the cluster, with the source switched to the file
    config = flink_deploy.job_config(lake, job) | {
        "job_name": name,
        "source": {"kind": "file", "path": str(source)},
        # the sinks commit when the input ends; no checkpoint is needed before it
        "checkpoint_interval_seconds": 3600,
        "parallelism": parallelism,
    }
    config_path = root / f"{name}.json"
    config_path.write_text(json.dumps(config))
    jars = sorted(str(p) for p in install.jar_dir(settings, "flink").glob("*.jar"))
    python = install.flink_python(settings)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "HADOOP_CLASSPATH": os.pathsep.join(jars),
        "FLINK_LOG_DIR": str(root / "logs" / name),  # the mini-cluster's own log, read below
    }
    started_ms = time.time() * 1000
    # own process group: a failing job restarts forever on the mini-cluster, and a time limit must stop all of it
    proc = subprocess.Popen(
        [str(python), "-m", f"flink_jobs.{JOBS[job].entry.stem}", "--config", str(config_path)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        _, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise RuntimeError(
            f"flink_jobs.{job} ({name}) did not finish in {RUN_TIMEOUT_S} s (a job that fails restarts forever on "
            "a mini-cluster with checkpointing on)"
        ) from None
    if proc.returncode != 0:
        log_file = REPO_ROOT / "var" / "tmp" / f"bench-streaming-{name}.log"  # outside the sandbox, kept
        log_file.write_text(stderr)
        errors = [ln for ln in stderr.splitlines() if ("Exception" in ln or "Error" in ln) and " at " not in ln]
        shown = "\n".join(errors[-15:] or [stderr[-3000:]])
        raise RuntimeError(f"flink_jobs.{job} ({name}) failed (whole output: {log_file}):\n{shown}")
    catalog = iceberg.load(lake)
    commits = [
        snapshot.timestamp_ms
        for spec in contract.TABLES
        for snapshot in catalog.load_table(spec.identifier).snapshots()
    ]
    if not commits:
        raise RuntimeError(f"flink_jobs.{job} ({name}) committed nothing")
    running_at = _all_tasks_running_at(root / "logs" / name)
    processing = max(commits) / 1000 - running_at if running_at is not None else None
    return (max(commits) - started_ms) / 1000, processing, lake


def _expected(source: Path, funnel_routes: list[str]) -> dict[str, int]:
    """What a file holds: its events (all valid; counted by event_id) and how many of them are funnel requests."""
    routes = set(funnel_routes)
    event_ids: set[str] = set()
    funnel_requests = 0
    with source.open("rb") as lines:
        for line in lines:
            event = orjson.loads(line)
            event_ids.add(event["event_id"])
            funnel_requests += event["route"] in routes
    return {"events": len(event_ids), "funnel_requests": funnel_requests}


def _latest_firings_sum(table: Any) -> int:
    """request_count summed over the latest firing of each window (a late re-firing replaces the earlier one)."""
    rows = table.scan(selected_fields=("window_start", "service", "route", "firing", "request_count")).to_arrow()
    latest: dict[tuple[Any, ...], tuple[int, int]] = {}
    for row in rows.to_pylist():
        key = (row["window_start"], row["service"], row["route"])
        if key not in latest or row["firing"] > latest[key][0]:
            latest[key] = (row["firing"], row["request_count"])
    return sum(count for _, count in latest.values())


def _check_output(lake: Settings, expected: dict[str, int]) -> dict[str, Any]:
    """What a run of the streaming job wrote, against what its file holds: every event in raw.http_events once,
    no dead letter, none late (for any window), every event counted in each window table. Also the events/s
    over the span of `ingested_at` (each row's processing time), a cross-check that does not depend on the
    start-up cost."""
    catalog = iceberg.load(lake)
    n = expected["events"]
    raw = catalog.load_table("raw.http_events").scan(selected_fields=("event_id", "ingested_at")).to_arrow()
    late = catalog.load_table("raw.late_events").scan(selected_fields=("window_name",)).to_arrow()
    daily = (
        catalog.load_table("speed.api_daily_running_totals")
        .scan(selected_fields=("window_start", "window_end", "request_count"))
        .to_arrow()
    )
    whole_day = [
        count
        for start, end, count in zip(
            _ms(daily.column("window_start")),
            _ms(daily.column("window_end")),
            daily.column("request_count").to_pylist(),
            strict=True,
        )
        if end - start == DAY_S * 1000
    ]
    # (counted, expected) per check
    checks: dict[str, tuple[int, int]] = {
        "raw.http_events rows": (raw.num_rows, n),
        "raw.http_events distinct event_ids": (int(pc.count_distinct(raw.column("event_id")).as_py()), n),
        "raw.dead_letter_events rows": (catalog.load_table("raw.dead_letter_events").scan().count(), 0),
        "raw.late_events rows": (late.num_rows, 0),
        "speed.api_requests_per_minute request_count": (
            _sum(catalog.load_table("speed.api_requests_per_minute"), "request_count"),
            n,
        ),
        # HOP 5 minutes sliding by 1: every event is in five windows
        "speed.api_traffic_sliding_5m request_count": (
            _sum(catalog.load_table("speed.api_traffic_sliding_5m"), "request_count"),
            5 * n,
        ),
        "speed.user_sessions request_count": (_sum(catalog.load_table("speed.user_sessions"), "request_count"), n),
        # CUMULATE 1 day in 1-hour steps: every event is in one whole-day window
        "speed.api_daily_running_totals request_count of whole-day windows": (sum(whole_day), n),
        "speed.requests_per_route_minute_firings request_count of latest firings": (
            _latest_firings_sum(catalog.load_table("speed.requests_per_route_minute_firings")),
            n,
        ),
        # every funnel request is a step of exactly one funnel (the input's end times out the open ones)
        "speed.checkout_funnels steps": (
            _sum(catalog.load_table("speed.checkout_funnels"), "steps"),
            expected["funnel_requests"],
        ),
    }
    ingested_ms = _ms(raw.column("ingested_at"))
    span_s = (max(ingested_ms) - min(ingested_ms)) / 1000 if ingested_ms else 0
    late_by_window: dict[str, int] = {}
    for window_name in late.column("window_name").to_pylist():
        late_by_window[window_name] = late_by_window.get(window_name, 0) + 1
    return {
        "verified": all(counted == want for counted, want in checks.values()),
        "checks": {name: {"counted": counted, "expected": want} for name, (counted, want) in checks.items()},
        "late_events_by_window": late_by_window,
        "events_per_second_over_ingested_at_span": round(raw.num_rows / span_s) if span_s else None,
    }


def throughput(events: int = EVENTS) -> dict[str, Any]:
    from infra import flink_deploy

    runs: dict[str, Any] = {}
    load_start = os.getloadavg()[0]
    with _sandbox("bench-streaming-tp-", ("catalog",)) as settings:
        root = settings.var_dir / "throughput"
        root.mkdir(parents=True, exist_ok=True)
        tiny = _messages_file(root, TINY_EVENTS)
        source = _messages_file(root, events)
        expected = _expected(source, settings.streaming.funnel_routes)
        for p in PARALLELISMS:
            started = time.monotonic()
            t_tiny, proc_tiny, _ = _run_on_mini_cluster(settings, root, JOB, tiny, p, f"tp_{JOB}_p{p}_tiny")
            t_big, proc_big, lake = _run_on_mini_cluster(settings, root, JOB, source, p, f"tp_{JOB}_p{p}_n")
            processing = proc_big - proc_tiny if proc_big is not None and proc_tiny is not None else None
            runs[f"p{p}"] = {
                "events_per_second": round(events / processing) if processing and processing > 0 else None,
                "events_per_second_start_to_commit": round(events / (t_big - t_tiny)) if t_big > t_tiny else None,
                "seconds_tasks_running_to_last_commit_n": _round(proc_big),
                "seconds_tasks_running_to_last_commit_tiny": _round(proc_tiny),
                "seconds_start_to_last_commit_n": round(t_big, 1),
                "seconds_start_to_last_commit_tiny": round(t_tiny, 1),
                "wall_seconds_both_runs": round(time.monotonic() - started, 1),
                **_check_output(lake, expected),
            }
        python_mode = flink_deploy.job_config(settings, JOB)["python_execution_mode"]
    p1, p2 = runs["p1"]["events_per_second"], runs["p2"]["events_per_second"]
    return {
        "method": "local mini-cluster, one bounded file of N events and one of 10; events_per_second = N / (t_N - "
        "t_10), t = from all tasks RUNNING (mini-cluster log) to the last Iceberg commit; "
        "events_per_second_start_to_commit: the same with t from starting the job's process (start-up included, "
        "noisy on a shared machine)",
        "job": JOB,
        "events": events,
        "funnel_requests": expected["funnel_requests"],
        "python_execution_mode": python_mode,
        "load_average_1m_start_end": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        **runs,
        "p2_over_p1": round(p2 / p1, 3) if p1 and p2 else None,
        "verified_every_run": all(run["verified"] for run in runs.values()),
    }


# ---- freshness: event time -> visible in Iceberg, on a whole sandboxed stack ----


def _produce(settings: Settings, service: str, rate: float, seconds: float, seed: int) -> list[tuple[int, str, int]]:
    """Produce `rate` events/s for `seconds`, each with event time = now; return (event ms, route, status) each."""
    from confluent_kafka import Producer

    from event_log.topic import client_config

    rng = random.Random(seed)
    producer = Producer({**client_config(settings), "enable.idempotence": True, "linger.ms": 5})
    sent: list[tuple[int, str, int]] = []
    started = time.time()
    while (now := time.time()) - started < seconds:
        due = int((now - started) * rate) + 1
        while len(sent) < due:
            event = _event(service, now, rng)
            producer.produce(settings.kafka.topic, orjson.dumps(event), key=str(event["user_id"]))
            sent.append((int(now * 1000), str(event["route"]), int(event["status_code"])))
        producer.poll(0)
        time.sleep(0.002)
    if producer.flush(60):
        raise RuntimeError("events were not delivered to Kafka")
    return sent


def _rows_with_commit_ms(
    table: Any, columns: list[str], service: str | None = None, keep: Callable[[pa.Table], Any] | None = None
) -> pa.Table:
    """The rows in the table's live data files (of `service`, where `keep(rows)` is true, when given), each with
    the commit time (ms) of the snapshot that added its file: the moment a reader could first see it."""
    committed_at = {s.snapshot_id: s.timestamp_ms for s in table.snapshots()}
    entries = table.inspect.entries()
    data_file = entries.column("data_file").combine_chunks()
    filters = [("service", "=", service)] if service is not None else None
    parts = []
    for status, snapshot_id, content, path in zip(
        entries.column("status").to_pylist(),
        entries.column("snapshot_id").to_pylist(),
        data_file.field("content").to_pylist(),
        data_file.field("file_path").to_pylist(),
        strict=True,
    ):
        if status == 2 or content != 0:  # deleted entries, delete files
            continue
        rows = pq.read_table(_local_path(path), columns=columns, filters=filters)
        if keep is not None:
            rows = rows.filter(keep(rows))
        if rows.num_rows:
            commit = pa.array([committed_at[snapshot_id]] * rows.num_rows, pa.int64())
            parts.append(rows.append_column("commit_ms", commit))
    if not parts:
        return pa.table({"commit_ms": pa.array([], pa.int64())})
    return pa.concat_tables(parts)


def _ms(column: pa.ChunkedArray) -> list[int]:
    """Epoch milliseconds of a timestamp column."""
    millis: list[int] = pc.cast(column, pa.timestamp("ms", tz="UTC"), safe=False).cast(pa.int64()).to_pylist()
    return millis


def _window_latencies(
    rows: pa.Table, sent: list[tuple[int, str, int]], key: Callable[[int, str, int], tuple[Any, ...]], keys: list[str]
) -> dict[str, Any]:
    """Per event: commit of its window's row - its event time; per window row: commit - window_end."""
    if rows.num_rows == 0:
        return {"rows": 0, "events_visible": 0}
    starts = _ms(rows.column("window_start"))
    ends = _ms(rows.column("window_end"))
    commits: list[int] = rows.column("commit_ms").to_pylist()
    other = [rows.column(k).to_pylist() for k in keys]
    first_commit: dict[tuple[Any, ...], int] = {}
    for i, start in enumerate(starts):
        k = (start, *(col[i] for col in other))
        first_commit[k] = min(first_commit.get(k, commits[i]), commits[i])
    per_event = [
        (first_commit[k] - event_ms) / 1000
        for event_ms, route, status in sent
        if (k := key(event_ms, route, status)) in first_commit
    ]
    return {
        "rows": rows.num_rows,
        "events_visible": len(per_event),
        "event_time_to_visible": _percentiles(per_event),
        "window_end_to_visible": _percentiles([(c - e) / 1000 for c, e in zip(commits, ends, strict=True)]),
    }


def _job_health(settings: Settings) -> dict[str, Any]:
    from flink_jobs import JOBS
    from infra import flink_deploy
    from infra.services import flink

    health: dict[str, Any] = {}
    for name in JOBS:
        job = flink_deploy.find_job(settings, name)
        if job is None:
            health[name] = {"state": "NOT RUNNING"}
            continue
        exceptions = flink.rest(settings, "GET", f"/jobs/{job['jid']}/exceptions")["exceptionHistory"]["entries"]
        checkpoints = flink.rest(settings, "GET", f"/jobs/{job['jid']}/checkpoints")
        e2e = checkpoints.get("summary", {}).get("end_to_end_duration", {})
        health[name] = {
            "state": job["state"],
            "failures": len(exceptions),
            "checkpoints_completed": checkpoints.get("counts", {}).get("completed"),
            "checkpoints_failed": checkpoints.get("counts", {}).get("failed"),
            "checkpoint_ms_p50": e2e.get("p50"),
            "checkpoint_ms_max": e2e.get("max"),
        }
    return health


def freshness(rate: float = 1000.0, seconds: float = 120.0, warmup_seconds: float = 15.0) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    service = f"bench-fresh-{tag}"
    with _sandbox("bench-streaming-fresh-", PIPELINE_TRAFFIC__RATE="1") as settings:
        catalog = iceberg.load(settings)
        interval = settings.flink.checkpoint_interval_seconds
        _produce(settings, f"bench-warmup-{tag}", rate, warmup_seconds, seed=1)
        load_before = os.getloadavg()[0]
        sent = _produce(settings, service, rate, seconds, seed=2)
        load_after = os.getloadavg()[0]
        produced = len(sent)
        achieved = produced / ((sent[-1][0] - sent[0][0]) / 1000)
        raw = catalog.load_table("raw.http_events")
        per_minute = catalog.load_table("speed.api_requests_per_minute")
        firings = catalog.load_table("speed.requests_per_route_minute_firings")
        where = f"service == '{service}'"

        def complete() -> bool:
            return (
                raw.refresh().scan(row_filter=where).count() >= produced
                and _sum(per_minute.refresh(), "request_count", where) >= produced
                and _sum(firings.refresh(), "request_count", where) >= produced
            )

        deadline = time.monotonic() + 300
        while not (done := complete()) and time.monotonic() < deadline:
            time.sleep(3)
        health = _job_health(settings)

        raw_rows = _rows_with_commit_ms(raw.refresh(), ["event_time", "ingested_at"], service)
        event_ms = _ms(raw_rows.column("event_time")) if raw_rows.num_rows else []
        commit_ms: list[int] = raw_rows.column("commit_ms").to_pylist()
        ingested_ms = _ms(raw_rows.column("ingested_at")) if raw_rows.num_rows else []
        raw_latency = _percentiles([(c - e) / 1000 for c, e in zip(commit_ms, event_ms, strict=True)])
        ingested = _percentiles([(i - e) / 1000 for i, e in zip(ingested_ms, event_ms, strict=True)])
        minute = _window_latencies(
            _rows_with_commit_ms(per_minute.refresh(), ["window_start", "window_end", "route", "status_code"], service),
            sent,
            lambda ms, route, status: (ms - ms % 60_000, route, status),
            ["route", "status_code"],
        )
        route_minute = _window_latencies(
            _rows_with_commit_ms(firings.refresh(), ["window_start", "window_end", "route"], service),
            sent,
            lambda ms, route, _status: (ms - ms % 60_000, route),
            ["route"],
        )
    p50, p99 = raw_latency["p50_s"], raw_latency["p99_s"]
    return {
        "produced_events": produced,
        "produce_seconds": seconds,
        "target_events_per_second": rate,
        "achieved_events_per_second": round(achieved, 1),
        "checkpoint_interval_seconds": interval,
        "all_visible_within_300_s_after_producing": done,
        "load_average_1m_before_after": [round(load_before, 2), round(load_after, 2)],
        "raw.http_events": {
            "rows_visible": raw_rows.num_rows,
            "event_time_to_visible": raw_latency,
            "event_time_to_ingested_at": ingested,
            "p50_ratio_to_goal": round(p50 / FRESHNESS_P50_GOAL_S, 3) if p50 is not None else None,
            "p99_ratio_to_goal": round(p99 / FRESHNESS_P99_GOAL_S, 3) if p99 is not None else None,
        },
        "speed.api_requests_per_minute": {
            **minute,
            "how": "per event: commit of its (minute, route, status) row - its event time; "
            "per row: commit - window_end",
        },
        "speed.requests_per_route_minute_firings": {
            **route_minute,
            "how": "per event: commit of its (minute, route) firing - its event time; per row: commit - window_end",
        },
        "goal": {"p50_s": FRESHNESS_P50_GOAL_S, "p99_s": FRESHNESS_P99_GOAL_S, "at_events_per_second": 1000},
        "jobs": health,
        "all_jobs_running": all(h["state"] == "RUNNING" and h.get("failures") == 0 for h in health.values()),
    }


# ---- replay: a day of traffic in raw.http_events, recomputed by the Kappa replay of `streaming` ----


def _day_of_traffic(schema: pa.Schema, day: datetime, rate: float, seed: int) -> pa.Table:
    """`rate` events/s on average over the UTC day, as an Arrow table of `schema` (nulls where not generated)."""
    from demo.traffic import USER_AGENTS

    rng = random.Random(seed)
    n = int(rate * DAY_S)
    start_us = int(day.timestamp()) * 1_000_000
    event_us = sorted(start_us + rng.randrange(DAY_S * 1_000_000) for _ in range(n))
    picked = rng.choices(ROUTES, weights=[w for _, _, w in ROUTES], k=n)
    statuses = rng.choices((200, 404, 503), weights=(95, 3, 2), k=n)
    users = [f"u{rng.randrange(2000)}" if rng.random() < 0.7 else None for _ in range(n)]
    columns: dict[str, list[Any]] = {
        "event_id": [uuid.UUID(int=rng.getrandbits(128), version=4).hex for _ in range(n)],
        "event_time": event_us,
        "service": rng.choices(SERVICES, k=n),
        "method": [method for method, _, _ in picked],
        "route": [route for _, route, _ in picked],
        "path": [route for _, route, _ in picked],
        "status_code": [500 if r == "/errors/boom" else st for (_, r, _), st in zip(picked, statuses, strict=True)],
        "duration_ms": [round(rng.lognormvariate(3, 0.8), 3) for _ in range(n)],
        "user_id": users,
        "client_address": [f"10.0.{rng.randrange(20)}.{rng.randrange(256)}" for _ in range(n)],
        "user_agent": rng.choices(USER_AGENTS, k=n),
        "schema_version": [1] * n,
        "kafka_partition": [i % 3 for i in range(n)],
        "kafka_offset": list(range(n)),
        "kafka_timestamp": event_us,
        "ingested_at": [us + 1_000_000 for us in event_us],
    }
    arrays = [
        pa.array(columns[field.name], type=field.type) if field.name in columns else pa.nulls(n, field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def replay(rate: float = 10.0, day: datetime = datetime(2026, 1, 5, tzinfo=UTC)) -> dict[str, Any]:
    from flink_jobs.streaming import SINKS
    from infra import flink_deploy
    from infra.services import flink

    with _sandbox("bench-streaming-replay-", ("catalog", "flink")) as settings:
        catalog = iceberg.load(settings)
        raw = catalog.load_table("raw.http_events")
        started = time.monotonic()
        events = _day_of_traffic(raw.schema().as_arrow(), day, rate, seed=11)
        generate_s = time.monotonic() - started
        started = time.monotonic()
        raw.append(events)
        append_s = time.monotonic() - started
        day_ms = int(day.timestamp() * 1000)
        started = time.monotonic()
        job_id = flink_deploy.replay(settings, JOB, day_ms, day_ms + DAY_S * 1000)
        replay_s = time.monotonic() - started
        job = flink.rest(settings, "GET", f"/jobs/{job_id}")
        job_s = job["duration"] / 1000
        until = datetime.fromtimestamp(day.timestamp() + DAY_S, tz=UTC)
        day_filter = f"window_start >= '{day.isoformat()}' and window_start < '{until.isoformat()}'"
        counted = _sum(catalog.load_table("speed.api_requests_per_minute"), "request_count", day_filter)
        # the tables the replay overwrites: the SQL windows'
        rows = {f"speed.{view}": catalog.load_table(f"speed.{view}").scan().count() for view, _ in SINKS}
    return {
        "day": day.date().isoformat(),
        "events": events.num_rows,
        "average_events_per_second_of_the_day": rate,
        "generate_seconds": round(generate_s, 1),
        "append_seconds": round(append_s, 1),
        "replay_seconds": round(replay_s, 1),
        "replay_job_state": job["state"],
        "replay_flink_job_seconds": round(job_s, 1),
        "events_per_second": round(events.num_rows / replay_s),
        "multiple_of_real_time": round(DAY_S / replay_s, 1),
        "multiple_of_real_time_flink_job_only": round(DAY_S / job_s, 1),
        "parallelism": settings.flink.parallelism,
        "request_count_sum_per_minute": counted,
        "verified_every_event_counted": counted == events.num_rows,
        "rows_written": rows,
    }


PARTS: dict[str, Callable[[], dict[str, Any]]] = {"throughput": throughput, "freshness": freshness, "replay": replay}


def run(parts: list[str] | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for part in parts or list(PARTS):
        started = time.monotonic()
        results[part] = {**PARTS[part](), "wall_seconds": round(time.monotonic() - started, 1)}
    return results


def main(argv: list[str]) -> None:
    unknown = [a for a in argv if a not in PARTS]
    if unknown:
        raise SystemExit(f"unknown part(s) {', '.join(unknown)}; allowed: {', '.join(PARTS)}")
    print(json.dumps(run(argv), indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
