"""A whole stack started through the same CLI a user runs (`python -m infra up`), on free ports, with its
state in a temporary folder; stopped (and checked to be gone) at the end of the module."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from config.settings import REPO_ROOT, Settings, load_settings
from infra import sandbox


@dataclass
class Stack:
    env: dict[str, str]
    settings: Settings
    up_seconds: float

    def cli(
        self, *args: str, timeout: float = 600, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`python -m infra <args>` on this stack; `env` adds to (or overrides) its environment for this call."""
        return subprocess.run(
            [sys.executable, "-m", "infra", *args],
            cwd=REPO_ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def pids(self) -> dict[str, int]:
        return {p.stem: json.loads(p.read_text())["pid"] for p in self.settings.run_dir.glob("*.pid")}


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A module's stack; the module's `STACK_ENV` (a dict of PIPELINE_* variables) adds to its configuration."""
    var_dir = sandbox.scratch_var_dir("itest-")
    env = sandbox.environment(
        var_dir,
        PIPELINE_FLINK__CHECKPOINT_INTERVAL_SECONDS="2",
        PIPELINE_TRAFFIC__RATE="20",
        **getattr(request.module, "STACK_ENV", {}),
    )
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if k.startswith("PIPELINE_")})
    try:
        settings = load_settings()
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "infra", "up"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        up_seconds = time.monotonic() - started
        stack = Stack(env=env, settings=settings, up_seconds=up_seconds)
        if proc.returncode != 0:
            stack.cli("down", timeout=300)
            pytest.fail(
                f"`python -m infra up` failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
            )
        yield stack
        stack.cli("down", timeout=300)
        shutil.rmtree(var_dir, ignore_errors=True)
    finally:
        os.environ.clear()
        os.environ.update(saved)
