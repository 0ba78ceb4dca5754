"""A second stack beside the default one: its own var/ and a free port for every port key of the
configuration. Used by the integration tests and the benchmarks, through the same CLI a user runs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from infra.config import ENV_PREFIX, REPO_ROOT, Settings, env_var
from infra.process import free_port


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


def environment(var_dir: Path, **overrides: str) -> dict[str, str]:
    """The process environment for a stack in `var_dir` on free ports (PIPELINE_* of the caller dropped)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    for key in port_keys():
        env[env_var(key)] = str(free_port())
    env[f"{ENV_PREFIX}PATHS__VAR_DIR"] = str(var_dir)
    env.update(overrides)
    return env
