"""A second stack beside the default one: its own var/ and a free port for every port key of the
configuration. Used by the integration tests and the benchmarks, through the same CLI a user runs."""

from __future__ import annotations

import os
import random
import socket
import tempfile
from pathlib import Path

from config.settings import ENV_PREFIX, REPO_ROOT, Settings, env_var


def port_keys() -> list[str]:
    """Every `<section>.<key>` of the configuration that is a TCP port."""
    keys = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        for key in getattr(model, "model_fields", {}):
            if key == "port" or key.endswith("_port"):
                keys.append(f"{section}.{key}")
    return keys


def scratch_var_dir(prefix: str) -> Path:
    """A fresh folder under the repository's var/tmp. Not under /tmp: when we run as root, the catalog's
    PostgreSQL runs as the `postgres` user, and pytest's or tempfile's folders (mode 0700) are closed to it."""
    base = REPO_ROOT / "var" / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    path.chmod(0o755)
    return path


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def stack_ports(count: int, rng: random.Random | None = None) -> list[int]:
    """`count` distinct free ports below the kernel's ephemeral range: a port the kernel hands out to outgoing
    connections (and to `free_port`) may be taken by one of the stack's own clients before its service binds it,
    which failed a stack's start now and then ("port ... is already in use")."""
    rng = rng or random.Random()
    low = 20_000
    high = min(_ephemeral_range()[0], 32_768) - 1
    ports: list[int] = []
    while len(ports) < count:
        port = rng.randint(low, high)
        if port in ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
    return ports


def environment(var_dir: Path, **overrides: str) -> dict[str, str]:
    """The process environment for a stack in `var_dir` on free ports (PIPELINE_* of the caller dropped)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    keys = port_keys()
    for key, port in zip(keys, stack_ports(len(keys)), strict=True):
        env[env_var(key)] = str(port)
    env[f"{ENV_PREFIX}PATHS__VAR_DIR"] = str(var_dir)
    env.update(overrides)
    return env
