"""Flink jobs on a local mini-cluster: the jobs' own SQL and Python, run by the Flink environment's Python over
a bounded file of messages, writing through Iceberg's Flink sink into a scratch warehouse that the tests read
back with pyiceberg. The catalog is the platform's embedded PostgreSQL, started for the session through the
CLI (`python -m infra up catalog`) on a free port: a job with several sinks commits from several connections
at once, which a SQLite catalog cannot take (docs/benchmarks.md). Each test gets its own catalog name (the JDBC
catalog keeps catalogs apart by name) and warehouse folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from config.settings import REPO_ROOT, Settings, load_settings
from event_log.topic import client_config
from infra import install, sandbox
from lakehouse import iceberg


@dataclass
class Lake:
    settings: Settings
    root: Path

    def catalog(self) -> Any:
        return iceberg.load(self.settings)

    def rows(self, identifier: str, columns: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        table = self.catalog().load_table(identifier)
        arrow = table.scan(selected_fields=columns or ("*",)).to_arrow()
        return arrow.to_pylist()

    def run_job(self, module: str, messages: list[str], name: str = "job", **overrides: Any) -> None:
        """Run `flink_jobs.<module>` over `messages` (one per line) on a local mini-cluster; wait for its end."""
        source = self.root / f"{name}.jsonl"
        source.write_text("".join(m + "\n" for m in messages))
        config_path = self.write_config(name, {"source": {"kind": "file", "path": str(source)}, **overrides})
        run_module(self.settings, module, config_path)

    def write_config(self, name: str, overrides: dict[str, Any]) -> Path:
        """A job configuration for this lake (a bounded run commits at its end: checkpoints every 60 s)."""
        config = {
            "job_name": name,
            "iceberg": {
                "catalog_name": self.settings.iceberg.catalog_name,
                "catalog": "jdbc",
                "uri": self.settings.catalog_jdbc_uri,
                "warehouse": self.settings.warehouse,
                "properties": iceberg.jdbc_credentials(self.settings),
            },
            "streaming": self.settings.streaming.model_dump(),
            "checkpoint_interval_seconds": 60,
            "python_execution_mode": self.settings.flink.python_execution_mode,
            **overrides,
        }
        config_path = self.root / f"{name}.json"
        config_path.write_text(json.dumps(config))
        return config_path


def mini_cluster_env(settings: Settings) -> dict[str, str]:
    """Environment of a local mini-cluster run: the connector jars a cluster has in its lib/ on the class path."""
    jars = sorted(str(p) for p in install.jar_dir(settings, "flink").glob("*.jar"))
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HADOOP_CLASSPATH": os.pathsep.join(jars)}


def run_module(settings: Settings, module: str, config_path: Path) -> None:
    proc = subprocess.run(
        [str(install.flink_python(settings)), "-m", f"flink_jobs.{module}", "--config", str(config_path)],
        cwd=REPO_ROOT, env=mini_cluster_env(settings), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if proc.returncode != 0:
        log_file = config_path.with_suffix(".log")
        log_file.write_text(proc.stderr)
        errors = [
            line
            for line in proc.stderr.splitlines()
            if ("Exception" in line or "Error" in line) and not line.lstrip().startswith("at ")
        ]
        shown = "\n".join(errors[-15:] or [proc.stderr[-4000:]])
        raise AssertionError(f"flink_jobs.{module} failed (whole output: {log_file}):\n{shown}")


@dataclass
class Sandbox:
    """The services of these tests: a var/ of their own, free ports, started through the CLI a user runs."""

    env: dict[str, str]
    settings: Settings

    def cli(self, *args: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "infra", *args], cwd=REPO_ROOT, env=self.env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, f"infra {' '.join(args)}:\n{proc.stderr[-3000:]}"


@pytest.fixture(scope="session")
def flink_sandbox() -> Iterator[Sandbox]:
    """The Flink environment installed, and an embedded PostgreSQL for the Iceberg catalog (other services
    on demand: `flink_sandbox.cli("up", "kafka")`; `down` at the end stops whatever was started)."""
    var_dir = sandbox.scratch_var_dir("flinktest-")
    env = sandbox.environment(var_dir)
    overrides = {k: v for k, v in env.items() if k.startswith("PIPELINE_")}
    saved = dict(os.environ)
    os.environ.update(overrides)
    box = Sandbox(env=env, settings=load_settings())
    try:
        install.ensure_flink_venv(box.settings)
        install.ensure_jars(box.settings, "flink")
        box.cli("up", "catalog")
        yield box
    finally:
        down = [sys.executable, "-m", "infra", "down"]
        subprocess.run(down, cwd=REPO_ROOT, env=env, capture_output=True, timeout=300)
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(var_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def catalog_settings(flink_sandbox: Sandbox) -> Settings:
    return flink_sandbox.settings


@pytest.fixture
def lake(tmp_path: Path, catalog_settings: Settings) -> Iterator[Lake]:
    """An empty lake (own catalog name, own warehouse) with every table of the contract."""
    name = "lake_" + tmp_path.name.lower().replace("-", "_")[-40:]
    settings = load_settings(iceberg={"catalog_name": name, "warehouse": (tmp_path / "warehouse").as_uri()})
    iceberg.ensure_tables(settings)
    yield Lake(settings=settings, root=tmp_path)


@pytest.fixture(scope="session")
def broker(flink_sandbox: Sandbox) -> Iterator[Sandbox]:
    """A Kafka broker in the sandbox, through the CLI."""
    flink_sandbox.cli("up", "kafka")
    yield flink_sandbox
    flink_sandbox.cli("down", "kafka")


@dataclass
class Topic:
    """A topic of one test on the sandbox's broker; `send` returns once the broker has the message."""

    name: str
    admin: AdminClient
    producer: Producer

    def send(self, message: str, partition: int | None = None) -> None:
        if partition is None:
            self.producer.produce(self.name, message.encode())
        else:
            self.producer.produce(self.name, message.encode(), partition=partition)
        assert self.producer.flush(10) == 0

    def delete(self) -> None:
        self.admin.delete_topics([self.name])


def create_topic(settings: Settings, prefix: str, partitions: int = 1) -> Topic:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(client_config(settings))
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)
    return Topic(name, admin, Producer({**client_config(settings), "enable.idempotence": True}))


def start_job(
    lake: Lake, topic: str, name: str, flink_options: dict[str, str] | None = None, **streaming: Any
) -> tuple[subprocess.Popen[bytes], IO[str]]:
    """The streaming job over `topic` on a local mini-cluster, checkpoints every second; its log in the lake.
    `flink_options`: the mini-cluster's configuration (where checkpoints go, one to restore from)."""
    settings = lake.settings
    config_path = lake.write_config(name, {
        "kafka": {"bootstrap_servers": settings.kafka.servers, "topic": topic, "group_id": f"flink-{topic}"},
        "source": {"kind": "kafka"},
        "streaming": {**settings.streaming.model_dump(), **streaming},
        "checkpoint_interval_seconds": 1,
    })  # fmt: skip
    # the job is unbounded: keep its client (and with it the local mini-cluster) alive until the test ends
    run = (
        "import sys; from pyflink.common import Configuration; "
        "from pyflink.datastream import StreamExecutionEnvironment; from flink_jobs import streaming; "
        "from flink_jobs.job_config import from_args; conf = Configuration(); "
        f"[conf.set_string(k, v) for k, v in {flink_options or {}!r}.items()]; "
        "env = StreamExecutionEnvironment.get_execution_environment(conf); "
        f"streaming.build(from_args(sys.argv[1:]), env); env.execute('{name}')"
    )
    log = (lake.root / f"{name}.log").open("w")
    job = subprocess.Popen(
        [str(install.flink_python(settings)), "-c", run, "--config", str(config_path)],
        cwd=REPO_ROOT, env=mini_cluster_env(settings), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    return job, log
