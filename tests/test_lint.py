"""ruff, mypy and the import contracts (pyproject.toml [tool.importlinter]) are part of the suite: CI enforces them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from config.settings import REPO_ROOT


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True)


def test_ruff_check():
    proc = _run("ruff", "check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format():
    proc = _run("ruff", "format", "--check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy():
    proc = _run("mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_import_contracts():
    """The layering: lakehouse never imports infra, the Flink jobs and the interceptor import nothing of ours, ..."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint_imports), "--no-cache"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout
