"""Install what the services need, from the registries only, idempotently.

- the Flink virtual environment (PyPI `apache-flink`, hash-locked in infra/requirements/flink.lock);
- the Kafka broker jars and the Flink connector jars (Maven Central, `mvn dependency:copy-dependencies` on
  the poms in infra/maven/), each jar checked against its sha256 in infra/versions.toml;
- Debian packages (apt-get, as root, only when missing): the catalog's PostgreSQL server
  (infra/services/postgres.py) and, for the browser tests of the Dagster UI, Chromium (`install --browser`).

Every step writes a stamp naming what it installed; a second run with the same pins does nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from config.logs import get_logger
from config.settings import REPO_ROOT, Settings

log = get_logger("infra.install")

VERSIONS_FILE = REPO_ROOT / "infra" / "versions.toml"
REQUIREMENTS_DIR = REPO_ROOT / "infra" / "requirements"
MAVEN_DIR = REPO_ROOT / "infra" / "maven"
JAR_GROUPS = ("kafka", "flink")
CHROMIUM = Path("/usr/bin/chromium")


class InstallError(RuntimeError):
    pass


def versions() -> dict[str, Any]:
    with open(VERSIONS_FILE, "rb") as fh:
        return tomllib.load(fh)


def _maven_properties(v: dict[str, Any]) -> dict[str, str]:
    java = v["java"]
    return {
        "kafka.version": java["kafka"],
        "log4j.version": java["log4j"],
        "flink.minor": java["flink_minor"],
        "flink.kafka.connector.version": java["flink_kafka_connector"],
        "flink.kafka.clients.version": java["flink_kafka_clients"],
        "flink.jackson.version": java["flink_jackson"],
        "iceberg.version": java["iceberg"],
        "hadoop.version": java["hadoop"],
        "commons.logging.version": java["commons_logging"],
        "sqlite.jdbc.version": java["sqlite_jdbc"],
        "postgresql.jdbc.version": java["postgresql_jdbc"],
    }


def _stamp_ok(stamp: Path, want: str) -> bool:
    return stamp.exists() and stamp.read_text() == want


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _run(argv: list[str], what: str) -> None:
    log.info("run", step=what, command=" ".join(argv[:4]) + (" ..." if len(argv) > 4 else ""))
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise InstallError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


def uv_executable() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(found).exists():
        raise InstallError("uv is not installed in this environment; run `make install` first")
    return found


# ---------------------------------------------------------------------------- Debian packages
def ensure_debian_packages(packages: Sequence[str], present: Path, what: str = "", alternative: str = "") -> None:
    """Install Debian `packages` with apt-get unless `present` (a file they install) already exists.

    Needs root (apt-get update, then install -y, non-interactive); otherwise, or when `present` is still
    missing afterwards, raises InstallError naming the packages. `what` names what is missing in that message
    (default: `present`), `alternative` is appended to it (e.g. "or point ... at another ...").
    """
    if present.exists():
        return
    names = " ".join(packages)
    missing = f"{what} not found at {present}" if what else f"{present} not found"
    if os.geteuid() != 0:
        raise InstallError(f"{missing}; install Debian's {names} (apt-get install {names}, as root){alternative}")
    log.info("install", component=names, source="apt")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise InstallError(f"{' '.join(argv)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    if not present.exists():
        raise InstallError(f"{missing} after apt-get install {names}")
    log.info("installed", component=names)


def ensure_browser() -> Path:
    """Debian's Chromium, for the browser tests of the Dagster UI (Playwright drives it; no browser download)."""
    ensure_debian_packages([versions()["debian"]["chromium"]], CHROMIUM, what="Chromium")
    return CHROMIUM


# ---------------------------------------------------------------------------- Flink virtual environment
def flink_venv(settings: Settings) -> Path:
    return settings.install_dir / "flink-venv"


def flink_python(settings: Settings) -> Path:
    return flink_venv(settings) / "bin" / "python"


def pyflink_dir(settings: Settings) -> Path:
    v = versions()["python"]["version"]
    return flink_venv(settings) / "lib" / f"python{v}" / "site-packages" / "pyflink"


def ensure_flink_venv(settings: Settings) -> Path:
    venv = flink_venv(settings)
    lock = REQUIREMENTS_DIR / "flink.lock"
    want = hashlib.sha256(lock.read_bytes()).hexdigest()
    stamp = venv / ".installed"
    if _stamp_ok(stamp, want):
        return venv
    uv = uv_executable()
    py = versions()["python"]["version"]
    log.info("install", component="flink-venv", path=str(venv))
    _run([uv, "venv", "--quiet", "--allow-existing", "--python", f"python{py}", str(venv)], "create Flink venv")
    _run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--require-hashes",
            "--python",
            str(venv / "bin" / "python"),
            "-r",
            str(lock),
        ],
        "install apache-flink",
    )
    stamp.write_text(want)
    log.info("installed", component="flink-venv")
    return venv


# ---------------------------------------------------------------------------- jars from Maven Central
def jar_dir(settings: Settings, group: str) -> Path:
    return settings.install_dir / "jars" / group


def ensure_jars(settings: Settings, group: str) -> Path:
    if group not in JAR_GROUPS:
        raise ValueError(f"unknown jar group {group!r}; allowed: {', '.join(JAR_GROUPS)}")
    v = versions()
    expected: dict[str, str] = v.get("jars", {}).get(group, {})
    props = _maven_properties(v)
    want = json.dumps({"props": props, "sha256": expected}, sort_keys=True)
    target = jar_dir(settings, group)
    stamp = target / ".installed"
    if _stamp_ok(stamp, want):
        return target
    if not expected:
        raise InstallError(f"infra/versions.toml has no [jars.{group}] checksums; run `python -m infra lock-jars`")
    fetched = fetch_jars(group, props)
    try:
        bad = {
            name: (expected.get(name), _sha256(fetched / name))
            for name in sorted(p.name for p in fetched.glob("*.jar"))
            if expected.get(name) != _sha256(fetched / name)
        }
        missing = sorted(set(expected) - {p.name for p in fetched.glob("*.jar")})
        if bad or missing:
            raise InstallError(
                f"jar checksums for {group} do not match infra/versions.toml: "
                f"mismatched={sorted(bad)} missing={missing}"
            )
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(fetched), target)
    finally:
        shutil.rmtree(fetched, ignore_errors=True)
    stamp.write_text(want)
    log.info("installed", component=f"{group}-jars", jars=len(expected), path=str(target))
    return target


def fetch_jars(group: str, props: dict[str, str] | None = None) -> Path:
    """Copy the group's jars out of Maven (local repository first, then Maven Central) into a temp dir."""
    props = props or _maven_properties(versions())
    out = Path(tempfile.mkdtemp(prefix=f"jars-{group}-"))
    argv = [
        "mvn",
        "-B",
        "-q",
        "-f",
        str(MAVEN_DIR / group / "pom.xml"),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={out}",
        "-DincludeScope=runtime",
    ]
    if group == "flink":
        argv.append("-DexcludeTransitive=true")
    argv += [f"-D{k}={val}" for k, val in props.items()]
    log.info("install", component=f"{group}-jars", source="maven")
    _run(argv, f"fetch {group} jars with Maven")
    return out


def lock_jars() -> dict[str, dict[str, str]]:
    """Compute the sha256 table of every jar group (after a version change) and write it to versions.toml."""
    tables: dict[str, dict[str, str]] = {}
    for group in JAR_GROUPS:
        fetched = fetch_jars(group)
        try:
            tables[group] = {p.name: _sha256(p) for p in sorted(fetched.glob("*.jar"))}
        finally:
            shutil.rmtree(fetched, ignore_errors=True)
    text = VERSIONS_FILE.read_text()
    head = text.split("\n[jars.", 1)[0].rstrip() + "\n"
    for group, table in tables.items():
        head += f"\n[jars.{group}]\n" + "".join(f'"{name}" = "{sha}"\n' for name, sha in table.items())
    VERSIONS_FILE.write_text(head)
    return tables


def install_all(settings: Settings, browser: bool = False) -> None:
    """The Flink venv and the jars; with `browser`, also Chromium for the browser tests (`make test`)."""
    ensure_flink_venv(settings)
    for group in JAR_GROUPS:
        if group == "kafka" and settings.kafka.mode == "external":
            continue
        ensure_jars(settings, group)
    if browser:
        ensure_browser()


def lock_python() -> None:
    """Rewrite the hash-locked requirement files from the pins in versions.toml (needs network)."""
    v = versions()["python"]
    uv = uv_executable()
    REQUIREMENTS_DIR.mkdir(parents=True, exist_ok=True)
    extras = {"pyiceberg": "pyiceberg[sql-sqlite,pyarrow,pyiceberg-core]", "psycopg": "psycopg[binary]"}
    groups = {
        "bootstrap": {"uv": v["uv"]},
        "main": v["main"],
        "flink": v["flink"],
        "interceptor": dict(v["interceptor"]),
    }
    for name, pins in groups.items():
        # the interceptor's environment: one lock valid on every Python it supports (markers where pins differ)
        universal = pins.pop("supports", None) if name == "interceptor" else None
        target = (
            ["--universal", "--python-version", str(universal).lstrip(">=")]
            if universal
            else ["--python-version", v["version"], "--python-platform", "x86_64-unknown-linux-gnu"]
        )
        with tempfile.NamedTemporaryFile("w", suffix=".in", delete=False) as src:
            for pkg, ver in pins.items():
                for one in ver if isinstance(ver, list) else [ver]:
                    src.write(f"{extras.get(pkg, pkg)}=={one}\n")
        _run(
            [
                uv,
                "pip",
                "compile",
                "--quiet",
                "--generate-hashes",
                "--no-header",
                "--no-annotate",
                *target,
                "--output-file",
                str(REQUIREMENTS_DIR / f"{name}.lock"),
                src.name,
            ],
            f"lock {name} requirements",
        )
        Path(src.name).unlink()
