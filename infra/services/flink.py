"""Apache Flink: a standalone cluster (one JobManager, one TaskManager) from the runtime inside PyPI's
`apache-flink`, or a remote cluster reached through its REST API.

The wheel's own `conf/` and `lib/` are left untouched: `var/flink/conf` holds the configuration rendered from
pipeline.yaml and `var/flink/lib` links the wheel's jars next to the connector jars from Maven Central.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import yaml

from config.logs import get_logger
from config.settings import REPO_ROOT, Settings
from infra import supervision
from infra.install import flink_python, jar_dir, pyflink_dir
from infra.process import ManagedProcess, PortSpec, ServiceError, wait_until
from infra.services.base import Probe, ServiceBase, Unit

log = get_logger("infra.flink")

_LOG4J_CONSOLE = """\
# Written by infra/services/flink.py: Flink logs to stdout, which the platform sends to var/log/<process>.log
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = ConsoleAppender
logger.akka.name = org.apache.pekko
logger.akka.level = WARN
logger.kafka.name = org.apache.kafka
logger.kafka.level = WARN
logger.hadoop.name = org.apache.hadoop
logger.hadoop.level = WARN
logger.zookeeper.name = org.apache.zookeeper
logger.zookeeper.level = WARN
logger.netty.name = org.jboss.netty.channel.DefaultChannelPipeline
logger.netty.level = OFF
appender.console.name = ConsoleAppender
appender.console.type = CONSOLE
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{ISO8601} %-5p %c{1} - %m%n
"""


def flink_home(settings: Settings) -> Path:
    return settings.var_dir / "flink"


def conf_dir(settings: Settings) -> Path:
    return flink_home(settings) / "conf"


def lib_dir(settings: Settings) -> Path:
    return flink_home(settings) / "lib"


def checkpoint_dir(settings: Settings) -> Path:
    return flink_home(settings) / "checkpoints"


def savepoint_dir(settings: Settings) -> Path:
    return flink_home(settings) / "savepoints"


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Flink 2's config.yaml is standard YAML: turn `a.b.c: v` keys into nested mappings."""
    out: dict[str, Any] = {}
    for key, value in sorted(flat.items()):
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _wheel_java_opts(settings: Settings) -> str:
    """The module-opening JVM options the wheel's own config.yaml ships (needed on Java 17)."""
    shipped = yaml.safe_load((pyflink_dir(settings) / "conf" / "config.yaml").read_text())
    return str(shipped["env"]["java"]["opts"]["all"])


def render_config(settings: Settings) -> dict[str, Any]:
    f = settings.flink
    python = str(flink_python(settings))
    home = flink_home(settings)
    flat: dict[str, Any] = {
        "env.java.opts.all": _wheel_java_opts(settings),
        # the code cache sweeper kept making compiled methods not entrant (~20,000 per sweep) and the JIT compiled
        # them again, most of a core after half an hour under load; the cache (240 MB) holds all of them (~55 MB)
        # ... and a JVM whose heap ran out ends (exit code 3) instead of running on with threads that died half-way;
        # `make up` starts it again and the jobs restore from their latest checkpoint (docs/operations.md, "Out of
        # memory")
        "env.java.opts.taskmanager": "-XX:-UseCodeCacheFlushing -XX:+ExitOnOutOfMemoryError",
        "env.java.opts.jobmanager": "-XX:+ExitOnOutOfMemoryError",
        "jobmanager.bind-host": f.host,
        "jobmanager.rpc.address": f.host,
        "jobmanager.rpc.port": f.rpc_port,
        "jobmanager.memory.process.size": f.jobmanager_memory,
        "jobmanager.execution.failover-strategy": "region",
        # a process that died is noticed by the others within 20 s instead of Flink's 50: the JobManager fails the
        # tasks of a dead TaskManager over sooner, and a TaskManager whose JobManager was started again registers
        # with the new one sooner (measured: 41 s after a JobManager's SIGKILL with the defaults)
        "heartbeat.interval": "5 s",
        "heartbeat.timeout": "20 s",
        "cluster.registration.max-timeout": "5 s",
        # a failed task restarts its job after a wait that grows while failures follow each other (a broker or the
        # catalog away for minutes is not hammered), from the job's last checkpoint
        "restart-strategy.type": "exponential-delay",
        "restart-strategy.exponential-delay.initial-backoff": f"{int(f.restart_initial_backoff_seconds * 1000)} ms",
        "restart-strategy.exponential-delay.max-backoff": f"{int(f.restart_max_backoff_seconds * 1000)} ms",
        "restart-strategy.exponential-delay.backoff-multiplier": f.restart_backoff_multiplier,
        "restart-strategy.exponential-delay.jitter-factor": f.restart_jitter,
        "restart-strategy.exponential-delay.reset-backoff-threshold": f"{f.restart_reset_backoff_minutes} min",
        "taskmanager.bind-host": f.host,
        "taskmanager.host": f.host,
        "taskmanager.numberOfTaskSlots": f.taskmanager_slots,
        "taskmanager.memory.process.size": f.taskmanager_memory,
        # a Kappa replay (batch mode) reserves this many network buffers per blocking result partition; Flink's
        # 512 (16 MB) exhausts a small TaskManager's network memory once the replay gets the slots of a stopped
        # job and runs more of its tasks at once ("Insufficient number of network buffers: required 512")
        "taskmanager.network.sort-shuffle.min-buffers": 64,
        "rest.address": f.host,
        "rest.bind-address": f.host,
        "rest.port": f.rest_port,
        "parallelism.default": f.parallelism,
        "execution.checkpointing.interval": f"{f.checkpoint_interval_seconds}s",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.dir": checkpoint_dir(settings).as_uri(),
        "execution.checkpointing.savepoint-dir": savepoint_dir(settings).as_uri(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": 3,
        # state on local disk (RocksDB), not on the heap: it may outgrow memory (the de-duplication remembers each
        # event_id for streaming.dedup_horizon_minutes); checkpoints copy only the files that changed
        "state.backend.type": "rocksdb",
        "execution.checkpointing.incremental": True,
        "state.backend.rocksdb.localdir": str(home / "rocksdb"),
        # most look-ups of the de-duplication are for an event_id it has not seen: a bloom filter answers those
        # without reading a data block of every level (without it, a look-up slowed down as the state grew)
        "state.backend.rocksdb.use-bloom-filter": True,
        # ... and partitioned: with one filter per file, a look-up whose filter had left the block cache read all of
        # it again (a pread and a checksum of the whole filter per look-up); the de-duplication's cost per event
        # rose from 53 to 255 µs as its state passed a million ids. Partitioned, only the partition needed is read
        # (a drain of 3 million events: 10,500 events/s throughout, ~55 µs per event for the de-duplication)
        "state.backend.rocksdb.memory.partitioned-index-filters": True,
        # every checkpoint flushes a small file (ids of random order, ~40,000 at 4,000 events/s and a 10 s
        # interval); with RocksDB's default level sizes (256 MB at L1) each merge of them rewrote most of the
        # state, so compaction cost per event grew with the state until the job fell behind. Levels sized from
        # the last one, a small L1 and small files: a merge rewrites little. `python -m bench.dedup_state`, from
        # 1.3 to 6.1 million ids: 3.6 -> 31.7 µs per id with Flink's levels, 2.8 -> 10.6 with these
        # (docs/benchmarks.md, "The de-duplication state")
        "state.backend.rocksdb.compaction.level.use-dynamic-size": True,
        "state.backend.rocksdb.compaction.level.max-size-level-base": "32mb",
        "state.backend.rocksdb.compaction.level.target-file-size-base": "8mb",
        "python.executable": python,
        "python.client.executable": python,
        "io.tmp.dirs": str(home / "tmp"),
        "web.upload.dir": str(home / "upload"),
        "web.tmpdir": str(home / "web"),
        "classloader.check-leaked-classloader": False,
        # PEMJA from lib/ (prepare() links flink-python there): a job's own copy of it would try to load the
        # native library a second time, which fails on Java 17 (NoSuchFieldException: loadedLibraryNames)
        "classloader.parent-first-patterns.additional": "pemja.",
    }
    return _nest(flat)


def prepare(settings: Settings) -> None:
    """Render conf/ and assemble lib/ (the wheel's jars + connector jars) under var/flink."""
    home = flink_home(settings)
    for sub in ("conf", "lib", "tmp", "upload", "web", "checkpoints", "savepoints", "jobs"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    conf = conf_dir(settings)
    header = "# Written by infra/services/flink.py from pipeline.yaml; edits are overwritten.\n"
    (conf / "config.yaml").write_text(header + yaml.safe_dump(render_config(settings), sort_keys=True))
    (conf / "log4j-console.properties").write_text(_LOG4J_CONSOLE)
    (conf / "log4j-cli.properties").write_text(_LOG4J_CONSOLE.replace("INFO", "WARN", 1))
    (conf / "log4j.properties").write_text(_LOG4J_CONSOLE)
    lib = lib_dir(settings)
    wanted = {p.name: p for p in (pyflink_dir(settings) / "lib").glob("*.jar")}
    # Flink's Python runtime from the wheel's opt/: loaded once by the cluster's class loader, not once per job
    # (PEMJA, thread mode's interpreter, cannot load its native library in a second job's class loader on Java 17)
    wanted |= {p.name: p for p in (pyflink_dir(settings) / "opt").glob("flink-python-*.jar")}
    wanted |= {p.name: p for p in jar_dir(settings, "flink").glob("*.jar")}
    for link in lib.iterdir():
        if link.name not in wanted or link.resolve() != wanted[link.name].resolve():
            link.unlink()
    for name, target in wanted.items():
        if not (lib / name).exists():
            (lib / name).symlink_to(target)


def flink_env(settings: Settings) -> dict[str, str]:
    """Environment for Flink's scripts and CLI: our conf/lib/log/pid folders, never the wheel's or /tmp."""
    home = flink_home(settings)
    return {
        "FLINK_CONF_DIR": str(conf_dir(settings)),
        "FLINK_LIB_DIR": str(lib_dir(settings)),
        "FLINK_LOG_DIR": str(settings.log_dir),
        "FLINK_PID_DIR": str(home / "run"),
        "PATH": f"{flink_python(settings).parent}:/usr/local/bin:/usr/bin:/bin",
    }


def rest_url(settings: Settings) -> str:
    return settings.flink.url


def rest(settings: Settings, method: str, path: str, timeout: float = 10.0, **kwargs: Any) -> Any:
    try:
        response = httpx.request(method, f"{rest_url(settings)}{path}", timeout=timeout, **kwargs)
    except httpx.HTTPError as exc:
        raise ServiceError(f"Flink REST API at {rest_url(settings)} does not answer: {exc}") from exc
    if response.status_code >= 400:
        raise ServiceError(f"Flink REST {method} {path} -> {response.status_code}: {response.text[:500]}")
    return response.json() if response.content else None


def overview(settings: Settings) -> dict[str, Any]:
    result: dict[str, Any] = rest(settings, "GET", "/overview", timeout=3)
    return result


def is_healthy(settings: Settings) -> bool:
    return int(overview(settings).get("taskmanagers", 0)) >= 1


def processes(settings: Settings) -> list[ManagedProcess]:
    f = settings.flink
    bin_dir = pyflink_dir(settings) / "bin"
    env = flink_env(settings)
    jobmanager = ManagedProcess(
        name="flink-jobmanager",
        argv=["bash", str(bin_dir / "jobmanager.sh"), "start-foreground"],
        log_file=settings.log_dir / "flink-jobmanager.log",
        run_dir=settings.run_dir,
        ports=[
            PortSpec(f.host, f.rest_port, "flink.rest_port"),
            PortSpec(f.host, f.rpc_port, "flink.rpc_port"),
        ],
        env=env,
        health=lambda: bool(rest(settings, "GET", "/config", timeout=2)),
        start_timeout=90,
    )
    taskmanager = ManagedProcess(
        name="flink-taskmanager",
        argv=["bash", str(bin_dir / "taskmanager.sh"), "start-foreground"],
        log_file=settings.log_dir / "flink-taskmanager.log",
        run_dir=settings.run_dir,
        env=env,
        health=lambda: is_healthy(settings),
        # a JobManager lists a TaskManager that died until its heartbeat times out: this one's own registration
        ready_line="Successful registration at resource manager",
        start_timeout=90,
    )
    return [jobmanager, taskmanager]


def cli_target(settings: Settings) -> list[str]:
    """`flink` CLI options that point it at the cluster's REST endpoint (embedded or remote)."""
    url = urlparse(rest_url(settings))
    port = url.port or (443 if url.scheme == "https" else 80)
    return [f"-Drest.address={url.hostname}", f"-Drest.port={port}"]


def resubmit_jobs(settings: Settings) -> None:
    """After a JobManager restart: each job that should run, from its latest retained checkpoint. In a process of
    its own (`python -m infra recover`): the submission's imports (the Iceberg catalog's client among them) would
    otherwise stay in the supervisor's memory for good."""
    wait_until(
        lambda: is_healthy(settings),
        timeout=300,
        what="a TaskManager to register with the new JobManager",
    )
    argv = [sys.executable, "-m", "infra", "recover", "--by", "supervisor", "--reason", "the JobManager was restarted"]
    done = subprocess.run(
        argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=settings.flink.submit_timeout_seconds + 300
    )
    if done.returncode != 0:
        raise ServiceError(f"resubmitting the jobs failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    log.warning("jobs_resubmitted", output=done.stdout.strip()[-500:])


class Flink(ServiceBase):
    """The Flink cluster: embedded (a JobManager and a TaskManager of the PyPI distribution), or remote (checked
    to have a TaskManager). A JobManager the supervisor starts again gets the jobs that should run resubmitted."""

    component = "flink"

    def start(self, settings: Settings) -> str | None:
        if settings.flink.mode == "remote":
            if not is_healthy(settings):
                url = rest_url(settings)
                raise ServiceError(f"the remote Flink cluster at {url} (flink.rest_url) has no TaskManager")
            return None
        prepare(settings)
        for proc in processes(settings):
            supervision.run(settings, proc)
        return None

    def stop(self, settings: Settings) -> None:
        if settings.flink.mode == "embedded":
            for proc in reversed(processes(settings)):
                supervision.stop(settings, proc)

    def units(self, settings: Settings) -> list[Unit]:
        if settings.flink.mode != "embedded":
            return []
        jobmanager, taskmanager = processes(settings)
        return [
            Unit(jobmanager, on_restart=lambda: resubmit_jobs(settings)),
            Unit(taskmanager, after=(jobmanager.name,)),
        ]

    def probes(self, settings: Settings) -> list[Probe]:
        def cluster_ok() -> str:
            found = overview(settings)
            if not found.get("taskmanagers"):
                raise RuntimeError("no TaskManager registered")
            text = "ok, {taskmanagers} TaskManager(s), {slots-available} free slot(s), {jobs-running} job(s) running"
            return text.format(**found)

        url = settings.flink.url
        if settings.flink.mode == "remote":
            return [Probe("flink", url, cluster_ok, external=True)]
        return [Probe(proc.name, url, cluster_ok) for proc in processes(settings)]
