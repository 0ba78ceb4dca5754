"""The interceptor is a distribution of its own: on each Python it supports (3.10 to 3.13), all present here, it is
built and installed alone into a fresh virtual environment (with nothing but the pins of
infra/requirements/interceptor.lock: confluent-kafka, orjson, its frameworks and pytest) and its own tests
(interceptor/tests) pass there, importing the installed package, not the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from config.settings import REPO_ROOT
from infra.install import uv_executable

pytestmark = pytest.mark.slow

PROJECT = REPO_ROOT / "interceptor"
LOCK = REPO_ROOT / "infra" / "requirements" / "interceptor.lock"
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")


def _interpreter(minor: str) -> str | None:
    """An interpreter of that version: pyenv's (where this machine keeps them), else one on PATH."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for candidate in sorted(root.glob(f"{minor}.*/bin/python{minor}"), reverse=True):
        return str(candidate)
    found = shutil.which(f"python{minor}")
    if found and subprocess.run([found, "--version"], capture_output=True).returncode == 0:
        return found
    return None


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{' '.join(args)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.parametrize("minor", SUPPORTED)
def test_the_interceptor_installed_alone_passes_its_tests(minor, tmp_path):
    python = _interpreter(minor)
    # every supported Python is on this machine (pyenv): a missing one fails the test, it never skips quietly
    assert python is not None, f"no Python {minor} on this machine (pyenv install {minor})"
    uv = uv_executable()
    # a copy: building leaves build/ and *.egg-info beside the sources
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    project = shutil.copytree(PROJECT, tmp_path / "interceptor", ignore=skip)
    venv = tmp_path / "venv"
    _run([uv, "venv", "--quiet", "--python", python, str(venv)])
    py = str(venv / "bin" / "python")
    _run([uv, "pip", "install", "--quiet", "--python", py, "--require-hashes", "-r", str(LOCK)])
    # a real build of the distribution (a wheel, not the checkout on a path), its dependencies already pinned
    _run([uv, "pip", "install", "--quiet", "--python", py, "--no-deps", "--no-build-isolation", str(project)])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = _run([py, "-c", "import interceptor, sys; print(interceptor.__file__, sys.version_info[:2])"], env=env)
    installed = f"{venv}/lib/python{minor}/site-packages/interceptor/__init__.py"
    assert f"{installed} ({minor.replace('.', ', ')})" in where.stdout, where.stdout
    # nothing of the platform is installed there
    missing = subprocess.run([py, "-c", "import dagster"], capture_output=True, env=env)
    assert missing.returncode != 0
    tests = _run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=project, env=env)
    assert " passed" in tests.stdout and "failed" not in tests.stdout, tests.stdout[-2000:]
