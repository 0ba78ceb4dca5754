"""PostgreSQL holding the Iceberg catalog (`iceberg_tables`, `iceberg_namespace_properties`).

Why not the SQLite file: Iceberg's Flink sink commits once per checkpoint per sink, several sinks at once, and
SQLite takes one writer at a time; measured, its JDBC catalog failed commits (`SQLITE_BUSY_SNAPSHOT`, the job
restarts) 7 times in 150 s with two sinks at 2 s checkpoints (docs/benchmarks.md). PostgreSQL takes them all.

Debian's server binaries; one cluster under var/postgres, listening on loopback only (no Unix socket), with a
generated password kept in var/postgres/password (mode 0600). PostgreSQL refuses to run as root, so when the
platform runs as root the server runs as the `postgres` system user that Debian's package creates.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.logs import get_logger
from config.settings import Settings
from infra import supervision
from infra.install import ensure_debian_packages, versions
from infra.process import ManagedProcess, PortSpec, ServiceError
from infra.services.base import Probe, ServiceBase, Unit, answers

if TYPE_CHECKING:
    import psycopg

log = get_logger("infra.postgres")

SERVICE_USER = "postgres"


def bin_dir() -> Path:
    return Path(f"/usr/lib/postgresql/{versions()['debian']['postgresql']}/bin")


def ensure_installed() -> None:
    """Debian's server binaries, installed with apt-get when missing (as root)."""
    ensure_debian_packages(
        [f"postgresql-{versions()['debian']['postgresql']}"],
        bin_dir() / "postgres",
        what="PostgreSQL server binaries",
        alternative=" or point iceberg.uri at another catalog database",
    )


def home(settings: Settings) -> Path:
    return settings.postgres_dir


FALLBACK_ROOT = Path("/var/lib/postgresql/http-events-pipeline")


def data_dir(settings: Settings) -> Path:
    """var/postgres/data, unless the `postgres` user (we run as root) cannot enter the folders above it
    (a checkout under a private folder): then Debian's /var/lib/postgresql, keyed by this var/ folder."""
    preferred = home(settings) / "data"
    if os.geteuid() != 0 or _reachable_by_service_user(preferred.parent):
        return preferred
    key = hashlib.sha256(str(home(settings).resolve()).encode()).hexdigest()[:12]
    return FALLBACK_ROOT / key / "data"


@functools.cache
def _reachable_by_service_user(folder: Path) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run([*_as_service_user(), "test", "-x", str(folder)], capture_output=True).returncode == 0


def password(settings: Settings) -> str:
    try:
        return settings.catalog_password_file.read_text().strip()
    except FileNotFoundError:
        raise ServiceError("the catalog database has no password yet: run `make up` first") from None


def _as_service_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={SERVICE_USER}", f"--regid={SERVICE_USER}", "--init-groups", "--"]


def _chown_to_service_user(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, SERVICE_USER, SERVICE_USER)


def prepare(settings: Settings) -> None:
    """Create the cluster once (initdb with a generated password)."""
    if (data_dir(settings) / "PG_VERSION").exists():
        return
    base = home(settings)
    base.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(24)
    password_file = settings.catalog_password_file
    password_file.write_text(secret + "\n")
    password_file.chmod(0o600)
    data = data_dir(settings)
    if data.parent != base:
        log.warning("data_outside_var", path=str(data), reason=f"the {SERVICE_USER} user cannot enter {base}")
        data.parent.mkdir(parents=True, exist_ok=True)
        _chown_to_service_user(data.parent)
    data.mkdir(mode=0o700, exist_ok=True)
    _chown_to_service_user(data)
    pwfile = data.parent / ".initdb-pw"  # where the postgres user can read it
    pwfile.write_text(secret + "\n")
    pwfile.chmod(0o600)
    _chown_to_service_user(pwfile)
    try:
        proc = subprocess.run(
            [*_as_service_user(), str(bin_dir() / "initdb"), "-D", str(data_dir(settings)),
             "-U", settings.postgres.user, "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
             "--no-locale", "--no-instructions"],
            capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode != 0:
            raise ServiceError(f"initdb failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    finally:
        pwfile.unlink(missing_ok=True)
    log.info("cluster_created", path=str(data_dir(settings)))


def _connect(settings: Settings, database: str, timeout: float = 3.0) -> psycopg.Connection[Any]:
    import psycopg

    pg = settings.postgres
    return psycopg.connect(
        host=pg.host, port=pg.port, user=pg.user, password=password(settings), dbname=database,
        connect_timeout=max(1, int(timeout)), autocommit=True,
    )  # fmt: skip


def is_healthy(settings: Settings) -> bool:
    with _connect(settings, "postgres") as conn:
        return conn.execute("select 1").fetchone() == (1,)


def process(settings: Settings) -> ManagedProcess:
    pg = settings.postgres
    argv = [
        *_as_service_user(), str(bin_dir() / "postgres"), "-D", str(data_dir(settings)),
        "-c", f"listen_addresses={pg.host}", "-c", f"port={pg.port}", "-c", "unix_socket_directories=",
        "-c", "max_connections=100", "-c", "shared_buffers=64MB", "-c", "logging_collector=off",
        "-c", "log_min_messages=warning",
    ]  # fmt: skip
    return ManagedProcess(
        name="postgres",
        argv=argv,
        log_file=settings.log_dir / "postgres.log",
        run_dir=settings.run_dir,
        ports=[PortSpec(pg.host, pg.port, "postgres.port")],
        health=lambda: is_healthy(settings),
        start_timeout=60,
        stop_timeout=30,
    )


def ensure_database(settings: Settings) -> None:
    name = settings.postgres.database
    with _connect(settings, "postgres") as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if not exists:
            from psycopg import sql

            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
            log.info("database_created", database=name)


def remove_data(settings: Settings) -> None:
    """For `make clean`: the cluster's data when it had to live outside var/ (var/ itself is removed)."""
    data = data_dir(settings)
    if data.parent != home(settings):
        shutil.rmtree(data.parent, ignore_errors=True)


class Catalog(ServiceBase):
    """The Iceberg catalog: its database (the embedded PostgreSQL, unless iceberg.uri names another) and the
    tables of the lake's contract, created or given their new columns."""

    component = "catalog"

    def start(self, settings: Settings) -> str | None:
        from lakehouse import iceberg  # pyiceberg: not for the supervisor's memory, which holds this service too

        if settings.embedded_postgres:
            ensure_installed()
            proc = process(settings)
            if not proc.is_running():
                settings.log_dir.mkdir(parents=True, exist_ok=True)
                prepare(settings)
            supervision.run(settings, proc)
            ensure_database(settings)
        created = iceberg.ensure_tables(settings)
        return f"iceberg tables created: {', '.join(created)}" if created else None

    def stop(self, settings: Settings) -> None:
        supervision.stop(settings, process(settings))

    def units(self, settings: Settings) -> list[Unit]:
        return [Unit(process(settings))] if settings.embedded_postgres else []

    def probes(self, settings: Settings) -> list[Probe]:
        pg = settings.postgres
        return [Probe("postgres", f"{pg.host}:{pg.port}", answers(is_healthy, settings))]
