"""The one typed configuration of the platform.

Read in exactly one place (`load_settings`): `pipeline.yaml` at the repository root (or the file named by
`PIPELINE_CONFIG`), then environment overrides `PIPELINE_<SECTION>__<KEY>` (e.g. `PIPELINE_KAFKA__PORT=19092`,
`PIPELINE_PIPELINE__MODE=lambda`). A wrong key or value fails at start-up with a `ConfigError` that names the
key and the allowed values. Every knob is documented, with its default, in docs/configuration.md.
"""

from __future__ import annotations

import os
import re
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = REPO_ROOT / "pipeline.yaml"
ENV_PREFIX = "PIPELINE_"
CONFIG_FILE_ENV = "PIPELINE_CONFIG"

Port = int
_MEMORY = re.compile(r"^[1-9][0-9]*[mg]$")
_CRON_FIELD = re.compile(r"^[0-9*/,-]+$")


def env_var(key: str) -> str:
    """The environment variable that overrides `<section>.<key>`, e.g. kafka.port -> PIPELINE_KAFKA__PORT."""
    section, name = key.split(".", 1)
    return f"{ENV_PREFIX}{section.upper()}__{name.upper()}"


class ConfigError(ValueError):
    """Bad configuration: the message names each offending key and what it allows."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError("must be a TCP port between 1 and 65535")
    return value


def _check_cron(value: str) -> str:
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError("must be a cron expression of 5 fields, like '30 0 * * *'")
    return value


def _check_memory(value: str) -> str:
    if not _MEMORY.match(value):
        raise ValueError("must be a size like 512m or 2g")
    return value


class PipelineSection(_Section):
    mode: Literal["lambda", "kappa"] = "kappa"


class DbtSection(_Section):
    """How dbt's DuckDB runs (lakehouse/dbt_runner.py passes these to dbt/profiles.yml)."""

    # DuckDB's own buffer limit; it spills to var/dbt/lake.duckdb.tmp beyond it. Not all of the process: leave headroom
    memory_limit: str = "1g"
    threads: int = Field(default=2, ge=1)

    _memory = field_validator("memory_limit")(_check_memory)


class PathsSection(_Section):
    var_dir: Path = Path("var")
    install_dir: Path = Path("var/opt")


class KafkaSection(_Section):
    mode: Literal["embedded", "external"] = "embedded"
    host: str = "127.0.0.1"
    port: Port = 9092
    controller_port: Port = 9093
    bootstrap_servers: str | None = None
    topic: str = "http_events"
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    retention_hours: int = Field(default=168, ge=1)
    heap: str = "256m"
    client: dict[str, str] = Field(default_factory=dict)

    _ports = field_validator("port", "controller_port")(_check_port)
    _heap = field_validator("heap")(_check_memory)

    @model_validator(mode="after")
    def _external_needs_servers(self) -> KafkaSection:
        if self.mode == "external" and not self.bootstrap_servers:
            raise ValueError("kafka.bootstrap_servers is required when kafka.mode is 'external'")
        return self

    @property
    def servers(self) -> str:
        return self.bootstrap_servers or f"{self.host}:{self.port}"


class FlinkSection(_Section):
    mode: Literal["embedded", "remote"] = "embedded"
    host: str = "127.0.0.1"
    rest_port: Port = 8081
    rpc_port: Port = 6123
    rest_url: str | None = None
    taskmanager_slots: int = Field(default=2, ge=1)
    jobmanager_memory: str = "768m"
    taskmanager_memory: str = "1536m"
    parallelism: int = Field(default=1, ge=1)
    checkpoint_interval_seconds: int = Field(default=10, ge=1)
    python_execution_mode: Literal["process", "thread"] = "thread"
    submit_timeout_seconds: int = Field(default=180, ge=10)
    # how Flink restarts a job whose task failed (exponential delay): the first wait, each next one times the
    # multiplier up to the maximum, with +/- jitter; back to the first wait after running this long without one
    restart_initial_backoff_seconds: float = Field(default=1.0, gt=0)
    restart_max_backoff_seconds: float = Field(default=60.0, gt=0)
    restart_backoff_multiplier: float = Field(default=1.5, ge=1)
    restart_jitter: float = Field(default=0.1, ge=0, le=1)
    restart_reset_backoff_minutes: int = Field(default=60, ge=1)

    _ports = field_validator("rest_port", "rpc_port")(_check_port)
    _memory = field_validator("jobmanager_memory", "taskmanager_memory")(_check_memory)

    @model_validator(mode="after")
    def _remote_needs_url(self) -> FlinkSection:
        if self.mode == "remote" and not self.rest_url:
            raise ValueError("flink.rest_url is required when flink.mode is 'remote'")
        return self

    @property
    def url(self) -> str:
        return (self.rest_url or f"http://{self.host}:{self.rest_port}").rstrip("/")


class StreamingSection(_Section):
    """Event-time semantics of the Flink jobs (docs/architecture.md, "The semantics users rely on")."""

    out_of_orderness_seconds: int = Field(default=5, ge=0)
    idle_timeout_seconds: int = Field(default=30, ge=1)
    session_gap_minutes: int = Field(default=30, ge=1)
    # how long an event_id is remembered to drop a second delivery (state: about 40 bytes per event on disk)
    dedup_horizon_minutes: int = Field(default=60, ge=1)
    replay_lookahead_minutes: int = Field(default=360, ge=0)
    # the streaming job's DataStream windows (flink_jobs/datastream_windows.py)
    allowed_lateness_seconds: int = Field(default=0, ge=0)
    funnel_routes: list[str] = Field(default_factory=lambda: ["/cart/items", "/checkout", "/payments"], min_length=2)
    funnel_timeout_minutes: int = Field(default=30, ge=1)


class IcebergSection(_Section):
    catalog_name: str = "lake"
    catalog: Literal["jdbc", "rest"] = "jdbc"
    # jdbc: a JDBC URL (default: the embedded PostgreSQL of the `postgres` section; jdbc:sqlite:<file> for a
    # single-writer file); rest: the catalog's URL
    uri: str | None = None
    # default: var/iceberg/warehouse on the local disk; s3://bucket/prefix with `properties` for S3
    warehouse: str | None = None
    # extra catalog properties handed to both Flink and pyiceberg (s3.endpoint, credentials, ...)
    properties: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _rest_needs_uri(self) -> IcebergSection:
        if self.catalog == "rest" and not self.uri:
            raise ValueError("iceberg.uri is required when iceberg.catalog is 'rest'")
        if self.uri and self.catalog == "jdbc" and not self.uri.startswith("jdbc:"):
            raise ValueError("iceberg.uri must be a JDBC URL (jdbc:sqlite:..., jdbc:postgresql://...)")
        return self


class PostgresSection(_Section):
    """The embedded PostgreSQL that holds the Iceberg catalog when `iceberg.uri` is not set."""

    host: str = "127.0.0.1"
    port: Port = 5433
    database: str = "iceberg"
    user: str = "iceberg"

    _port = field_validator("port")(_check_port)


class DagsterSection(_Section):
    host: str = "127.0.0.1"
    port: Port = 3000
    # the code server the webserver and the daemon share (dagster_project.definitions, loaded once)
    code_server_port: Port = 4000
    # the first day of the daily partitions (batch layer, backfills): history before it is not offered
    first_day: date = date(2026, 1, 1)
    # schedules (cron, UTC); each can be switched off in the UI
    dbt_cron: str = "15 * * * *"
    batch_cron: str = "30 0 * * *"
    maintenance_cron: str = "0 3 * * *"
    # how often the sensors look at the Flink jobs and at the lag and freshness of the pipeline
    health_interval_seconds: int = Field(default=30, ge=5)
    # a Flink job that should run but is not RUNNING (restarting, no TaskManager or free slot, gone) for longer
    # fails its `running` check; the sensor leaves the first this-many seconds after a JobManager restart to the
    # supervisor, which resubmits the jobs itself
    unhealthy_after_seconds: int = Field(default=120, ge=10)
    checks_interval_seconds: int = Field(default=60, ge=10)

    _port = field_validator("port", "code_server_port")(_check_port)
    _crons = field_validator("dbt_cron", "batch_cron", "maintenance_cron")(_check_cron)


class ChecksSection(_Section):
    """Thresholds of the asset checks Dagster evaluates (dagster_project/defs/*/checks.py)."""

    # a streaming table whose last commit is older than this fails its freshness check
    freshness_minutes: int = Field(default=5, ge=1)
    # a Flink job whose Kafka consumer group is further behind the topic's end than this many events
    max_consumer_lag: int = Field(default=10_000, ge=0)
    # the rates are taken over the last `rate_window_minutes` of arrivals
    max_dead_letter_rate: float = Field(default=0.01, ge=0, le=1)
    max_late_rate: float = Field(default=0.01, ge=0, le=1)
    rate_window_minutes: int = Field(default=60, ge=1)


class SupervisorSection(_Section):
    """How the supervisor (infra/supervisor.py) brings back a process of the stack that ended on its own."""

    # the wait before the first restart; each restart that follows within `reset_after_seconds` waits
    # `backoff_multiplier` times longer, up to `max_backoff_seconds`
    initial_backoff_seconds: float = Field(default=1.0, gt=0)
    max_backoff_seconds: float = Field(default=60.0, gt=0)
    backoff_multiplier: float = Field(default=2.0, ge=1)
    # a service that ran this long since its last start is back to the initial wait
    reset_after_seconds: int = Field(default=300, ge=1)
    # at most this many restarts of one service within `budget_minutes`: one more and the supervisor gives up on
    # it (a named alarm in its log, `make status` and Dagster) until the next `make up`
    restart_budget: int = Field(default=5, ge=1)
    budget_minutes: int = Field(default=15, ge=1)
    # how often it looks at its processes (it is their parent: an exit is seen at the next look)
    poll_interval_seconds: float = Field(default=1.0, ge=0.1, le=30)

    @model_validator(mode="after")
    def _max_at_least_initial(self) -> SupervisorSection:
        if self.max_backoff_seconds < self.initial_backoff_seconds:
            raise ValueError("supervisor.max_backoff_seconds must be at least supervisor.initial_backoff_seconds")
        return self


class DemoSection(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 8000
    service_name: str = "demo-shop"

    _port = field_validator("port")(_check_port)


class InterceptorSection(_Section):
    """How the demo app's interceptor is set up (a user's own app passes the same options in code)."""

    spool_max_mb: int = Field(default=512, ge=1)
    spool_fsync: bool = False
    anonymise_client: bool = False
    user_id_header: str | None = "x-user-id"
    # the route of every request no route matched (the path stays in the event)
    unmatched_route: str = Field(default="<unmatched>", min_length=1)
    capture_headers: list[str] = Field(default_factory=list)
    capture_query_params: list[str] = Field(default_factory=list)
    deny_headers: list[str] = Field(default_factory=list)
    deny_query_params: list[str] = Field(default_factory=list)
    stats_log_seconds: int = Field(default=60, ge=1)


class TrafficSection(_Section):
    enabled: bool = True
    rate: float = Field(default=20.0, gt=0, le=10000)
    seed: int | None = None


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file; the environment source is layered on top by pydantic-settings."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if not self.path.exists():
            if self.path != DEFAULT_CONFIG_FILE:
                raise ConfigError(f"{CONFIG_FILE_ENV}: no such file {self.path}")
            return {}
        try:
            data = yaml.safe_load(self.path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{self.path}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{self.path}: the top level must be a mapping of sections")
        return data


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True)

    pipeline: PipelineSection = PipelineSection()
    paths: PathsSection = PathsSection()
    kafka: KafkaSection = KafkaSection()
    flink: FlinkSection = FlinkSection()
    streaming: StreamingSection = StreamingSection()
    iceberg: IcebergSection = IcebergSection()
    postgres: PostgresSection = PostgresSection()
    dagster: DagsterSection = DagsterSection()
    dbt: DbtSection = DbtSection()
    checks: ChecksSection = ChecksSection()
    supervisor: SupervisorSection = SupervisorSection()
    demo: DemoSection = DemoSection()
    interceptor: InterceptorSection = InterceptorSection()
    traffic: TrafficSection = TrafficSection()

    _config_file: Path = DEFAULT_CONFIG_FILE

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = Path(os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))
        return (init_settings, env_settings, _YamlSource(settings_cls, path))

    # ---- derived locations (all relative paths are relative to the repository root) ----
    def _abs(self, p: Path) -> Path:
        return p if p.is_absolute() else (REPO_ROOT / p)

    @cached_property
    def var_dir(self) -> Path:
        return self._abs(self.paths.var_dir)

    @cached_property
    def install_dir(self) -> Path:
        return self._abs(self.paths.install_dir)

    @property
    def log_dir(self) -> Path:
        return self.var_dir / "log"

    @property
    def run_dir(self) -> Path:
        return self.var_dir / "run"

    @property
    def spool_dir(self) -> Path:
        return self.var_dir / "spool"

    @property
    def iceberg_dir(self) -> Path:
        return self.var_dir / "iceberg"

    @property
    def postgres_dir(self) -> Path:
        return self.var_dir / "postgres"

    @property
    def catalog_password_file(self) -> Path:
        """The embedded PostgreSQL's generated password (mode 0600): written when its cluster is created,
        read by every catalog client."""
        return self.postgres_dir / "password"

    @property
    def embedded_postgres(self) -> bool:
        """True when the catalog lives in the PostgreSQL that `make up` runs (iceberg.uri not set)."""
        return self.iceberg.catalog == "jdbc" and self.iceberg.uri is None

    @property
    def catalog_jdbc_uri(self) -> str:
        if self.embedded_postgres:
            pg = self.postgres
            return f"jdbc:postgresql://{pg.host}:{pg.port}/{pg.database}"
        uri = self.iceberg.uri or ""
        if uri.startswith("jdbc:sqlite:") and not uri.startswith("jdbc:sqlite:/"):
            return f"jdbc:sqlite:{self._abs(Path(uri.removeprefix('jdbc:sqlite:')))}"
        return uri

    @property
    def warehouse(self) -> str:
        return self.iceberg.warehouse or (self.iceberg_dir / "warehouse").as_uri()


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        model = field.annotation
    return sorted(model.model_fields) if hasattr(model, "model_fields") else []


def _format(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not isinstance(p, int))
        key = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc)
            lines.append(f"{key}: unknown key (allowed keys: {', '.join(allowed)})")
            continue
        if err["type"] == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            lines.append(f"{key}: {err['input']!r} is not allowed (allowed values: {expected})")
            continue
        lines.append(f"{key}: {err['msg'].removeprefix('Value error, ')}")
    env = f"{ENV_PREFIX}<SECTION>__<KEY>"
    return "invalid configuration (pipeline.yaml or " + env + "):\n  " + "\n  ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Read the configuration once; raise `ConfigError` naming every bad key."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_format(exc)) from None
