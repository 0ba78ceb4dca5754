"""Apache Kafka: a single KRaft node (broker + controller) from the Maven Central jars, or an external cluster.

The storage is formatted once (`var/kafka/data/meta.properties` marks it); the broker runs in the foreground of
its own session, logging to `var/log/kafka.log`. The topic is created with the admin API.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient

from config.logs import get_logger
from config.settings import Settings
from event_log.topic import client_config, ensure_topic, topic_end_offsets
from infra import supervision
from infra.install import jar_dir
from infra.process import ManagedProcess, PortSpec, ServiceError
from infra.services.base import Probe, ServiceBase, Unit

log = get_logger("infra.kafka")

_LOG4J2 = """\
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "%d{ISO8601} %p %c{1} %m%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: state.change.logger
        level: WARN
"""


def kafka_home(settings: Settings) -> Path:
    return settings.var_dir / "kafka"


def render_server_properties(settings: Settings) -> str:
    k = settings.kafka
    data = kafka_home(settings) / "data"
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{k.host}:{k.controller_port}",
        "listeners": f"PLAINTEXT://{k.host}:{k.port},CONTROLLER://{k.host}:{k.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{k.host}:{k.port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data),
        "num.partitions": str(k.partitions),
        "log.retention.hours": str(k.retention_hours),
        # single node: internal topics cannot be replicated
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
    }
    header = "# Written by infra/services/kafka.py from pipeline.yaml; edits are overwritten.\n"
    return header + "".join(f"{key}={value}\n" for key, value in lines.items())


def _java_classpath(settings: Settings) -> str:
    return str(jar_dir(settings, "kafka") / "*")


def prepare(settings: Settings) -> Path:
    """Write server.properties and log4j2.yaml; format the storage the first time."""
    home = kafka_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    props = home / "server.properties"
    props.write_text(render_server_properties(settings))
    (home / "log4j2.yaml").write_text(_LOG4J2)
    if not (home / "data" / "meta.properties").exists():
        cluster_id = _random_cluster_id()
        proc = subprocess.run(
            [
                "java",
                "-cp",
                _java_classpath(settings),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(props),
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise ServiceError(f"formatting Kafka storage failed:\n{proc.stdout}{proc.stderr}")
        log.info("storage_formatted", cluster_id=cluster_id, path=str(home / "data"))
    return props


def _random_cluster_id() -> str:
    """16 random bytes, base64url without padding (what StorageTool random-uuid prints). Like Kafka's own
    Uuid.randomUuid, never one that starts with "-": the storage tool would read it as an option (1 in 64
    fresh installs failed with "argument --cluster-id/-t: expected one argument")."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def is_healthy(settings: Settings, timeout: float = 2.0) -> bool:
    # log_level 0: a broker that is still starting is expected here, not worth a librdkafka error line
    admin = AdminClient({**client_config(settings), "socket.timeout.ms": int(timeout * 1000), "log_level": 0})
    metadata = admin.list_topics(timeout=timeout)
    return len(metadata.brokers) > 0


def process(settings: Settings) -> ManagedProcess:
    k = settings.kafka
    home = kafka_home(settings)
    argv = [
        "java",
        f"-Xms{k.heap}",
        f"-Xmx{k.heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={home / 'log4j2.yaml'}",
        "-cp",
        _java_classpath(settings),
        "kafka.Kafka",
        str(home / "server.properties"),
    ]
    return ManagedProcess(
        name="kafka",
        argv=argv,
        log_file=settings.log_dir / "kafka.log",
        run_dir=settings.run_dir,
        ports=[
            PortSpec(k.host, k.port, "kafka.port"),
            PortSpec(k.host, k.controller_port, "kafka.controller_port"),
        ],
        health=lambda: is_healthy(settings),
        start_timeout=90,
        stop_timeout=30,
    )


class Kafka(ServiceBase):
    """The broker (embedded: one KRaft node; external: checked to answer) and the events topic."""

    component = "kafka"

    def start(self, settings: Settings) -> str | None:
        if settings.kafka.mode == "external":
            if not is_healthy(settings, timeout=10):
                raise ServiceError(
                    f"the external Kafka cluster at {settings.kafka.servers} (kafka.bootstrap_servers) does not answer"
                )
        else:
            proc = process(settings)
            if not proc.is_running():
                prepare(settings)
            supervision.run(settings, proc)
        ensure_topic(settings)
        return None

    def stop(self, settings: Settings) -> None:
        if settings.kafka.mode == "embedded":
            supervision.stop(settings, process(settings))

    def units(self, settings: Settings) -> list[Unit]:
        return [Unit(process(settings))] if settings.kafka.mode == "embedded" else []

    def probes(self, settings: Settings) -> list[Probe]:
        def topic_ok() -> str:
            return f"ok, topic {settings.kafka.topic} end offsets {sum(topic_end_offsets(settings).values())}"

        return [Probe("kafka", settings.kafka.servers, topic_ok, external=settings.kafka.mode == "external")]
