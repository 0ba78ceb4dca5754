"""What the benchmarks that run on a whole stack share: a sandboxed stack (`python -m infra up` in a scratch var/
on free ports, so it runs beside a developer's own `make up`), and what they read off it while it runs: the
resident memory and CPU time of each service, each Flink job's consumer lag, and the CPU time of each job's
threads in the TaskManager.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.settings import ENV_PREFIX, REPO_ROOT, Settings, load_settings
from flink_jobs import JOBS
from infra import sandbox
from infra.process import _group_members

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cli(env: dict[str, str], *args: str, timeout: float = 900) -> float:
    """`python -m infra ARGS` in `env`; its seconds."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "infra", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"infra {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return round(time.monotonic() - started, 1)


@dataclass(frozen=True)
class Stack:
    settings: Settings
    env: dict[str, str]
    var_dir: Path


@contextmanager
def sandboxed(prefix: str, components: tuple[str, ...] = (), **overrides: str) -> Iterator[Stack]:
    """A stack of `components` (all when empty) in a scratch var/ on free ports; this process's PIPELINE_*
    variables point at it while it runs. Stopped and removed at the end, whatever happens."""
    var_dir = sandbox.scratch_var_dir(prefix)
    env = sandbox.environment(var_dir, **overrides)
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            del os.environ[key]
        os.environ.update({k: v for k, v in env.items() if k.startswith(ENV_PREFIX)})
        cli(env, "up", *components)
        yield Stack(load_settings(), env, var_dir)
    finally:
        try:
            cli(env, "down", timeout=300)
        finally:
            os.environ.clear()
            os.environ.update(saved)
            shutil.rmtree(var_dir, ignore_errors=True)


def report(result: dict[str, Any], path: Path | None) -> None:
    """A benchmark's JSON on stdout, and into `path` when given."""
    text = json.dumps(result, indent=2, default=str)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(text)


def service_pids(var_dir: Path) -> dict[str, int]:
    """The process group leader of every service the stack's CLI started (var/run/<service>.pid)."""
    return {p.stem: int(json.loads(p.read_text())["pid"]) for p in sorted((var_dir / "run").glob("*.pid"))}


def _proc_stat(pid: int) -> tuple[float, float]:
    """(CPU seconds, resident MiB) of one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _pss_mib(pid: int) -> float:
    """Proportional set size of one process in MiB: its resident pages, each shared page divided among the
    processes that map it (summed over processes, the memory they take together; RSS counts shared pages once
    per process, a forked child's twice)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0.0


# Dagster runs (the run worker, which the code server starts as a `multiprocessing` spawn, and the dbt it starts)
# are children of the code server: counted apart, as `dagster-runs`, they show what the services hold and what a
# run adds while it lasts
RUNS = "dagster-runs"
_RUN_MARKERS = (b"spawn_main", b"execute_run", b"execute_step", b"/dbt\x00")


def _is_run(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return any(marker in cmdline for marker in _RUN_MARKERS)


def service_usage(var_dir: Path) -> dict[str, dict[str, float]]:
    """Per service: CPU seconds so far, resident and proportional MiB, summed over its process group (the
    TaskManager's Python workers count with it); the code server's Dagster runs under `dagster-runs`."""
    usage: dict[str, dict[str, float]] = {}
    for name, leader in service_pids(var_dir).items():
        for pid in _group_members(leader):
            owner = RUNS if name == "dagster-code-server" and _is_run(pid) else name
            c, r = _proc_stat(pid)
            totals = usage.setdefault(owner, {"cpu_s": 0.0, "rss_mib": 0.0, "pss_mib": 0.0})
            totals["cpu_s"] += c
            totals["rss_mib"] += r
            totals["pss_mib"] += _pss_mib(pid)
    usage.setdefault(RUNS, {"cpu_s": 0.0, "rss_mib": 0.0, "pss_mib": 0.0})
    return {name: {k: round(v, 2 if k == "cpu_s" else 1) for k, v in u.items()} for name, u in usage.items()}


def python_worker_cpu(var_dir: Path) -> float:
    """CPU seconds of the TaskManager's Python worker processes (process mode), so far."""
    leader = service_pids(var_dir).get("flink-taskmanager")
    if leader is None:
        return 0.0
    total = 0.0
    for pid in _group_members(leader):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"pyflink" in cmdline and b"java" not in cmdline.split(b"\0")[0]:
            total += _proc_stat(pid)[0]
    return total


_THREAD = re.compile(r'^"(?P<name>.*?)" .*?cpu=(?P<ms>[0-9.]+)ms', re.MULTILINE)


def taskmanager_threads(var_dir: Path) -> dict[str, float]:
    """CPU milliseconds of every thread of the TaskManager's JVM, by thread name (jcmd Thread.print)."""
    leader = service_pids(var_dir).get("flink-taskmanager")
    jvm = next(
        (pid for pid in _group_members(leader or 0) if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"java")),
        None,
    )
    if jvm is None:
        return {}
    out = subprocess.run(["jcmd", str(jvm), "Thread.print"], capture_output=True, text=True, timeout=60).stdout
    threads: dict[str, float] = {}
    for match in _THREAD.finditer(out):
        threads[match["name"]] = threads.get(match["name"], 0.0) + float(match["ms"])
    return threads


def job_cpu_seconds(settings: Settings, before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds of each job's threads between two `taskmanager_threads` readings (a task thread and its source
    fetcher are named after the job's vertex), and `shared` for the rest (GC, JIT, RocksDB, network, RPC)."""
    from infra import flink_deploy
    from infra.services import flink

    vertices: dict[str, str] = {}
    for job in JOBS:
        found = flink_deploy.find_job(settings, job)
        if found:
            for vertex in flink.rest(settings, "GET", f"/jobs/{found['jid']}")["vertices"]:
                vertices[vertex["name"]] = job
    spent = {job: 0.0 for job in JOBS} | {"shared": 0.0}
    for name, ms in after.items():
        delta = (ms - before.get(name, 0.0)) / 1000
        owner = next((job for vertex, job in vertices.items() if vertex in name), "shared")
        spent[owner] += delta
    return {k: round(v, 2) for k, v in spent.items()}


def job_positions(settings: Settings) -> tuple[int, dict[str, int | None]]:
    """(the topic's end, summed over partitions; each job's committed position, summed), one look."""
    from confluent_kafka import KafkaException

    from event_log.topic import client_config, topic_offsets

    groups = {job: spec.consumer_group for job, spec in JOBS.items()}
    client = client_config(settings)
    for attempt in range(10):
        try:
            offsets = topic_offsets(client, settings.kafka.topic, list(groups.values()), window_seconds=1)
            break
        except KafkaException:  # a group coordinator moving (the broker just started): ask again
            if attempt == 9:
                raise
            time.sleep(1)
    end = sum(offsets.end.values())
    committed: dict[str, int | None] = {}
    for job, group in groups.items():
        lag = offsets.lag(group)
        committed[job] = None if lag is None else end - lag
    return end, committed


def job_states(settings: Settings) -> dict[str, Any]:
    """Each job's state, restarts (Flink's own) and recoveries (ours)."""
    from infra import flink_deploy

    states: dict[str, Any] = {}
    for job in JOBS:
        status = flink_deploy.status(settings, job)
        states[job] = {
            "state": status.state,
            "restarts": status.restarts,
            "recoveries": status.recoveries,
            "job_id": status.job_id,
        }
    return states
