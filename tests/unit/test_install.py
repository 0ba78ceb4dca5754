"""Debian packages installed with apt-get only when missing (PostgreSQL's server, Chromium for the UI tests)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from infra import install
from infra.install import InstallError, ensure_debian_packages


def _apt(calls: list[tuple[list[str], str | None]], creates: Path | None = None):
    def run(argv, **kwargs):
        calls.append((argv, kwargs["env"].get("DEBIAN_FRONTEND")))
        if creates is not None and argv[:2] == ["apt-get", "install"]:
            creates.touch()
        return subprocess.CompletedProcess(argv, 0, "", "")

    return run


def test_nothing_to_do_when_present(tmp_path, monkeypatch):
    calls: list[tuple[list[str], str | None]] = []
    monkeypatch.setattr(install.subprocess, "run", _apt(calls))
    (tmp_path / "chromium").touch()
    ensure_debian_packages(["chromium"], tmp_path / "chromium")
    assert calls == []


def test_installs_as_root(tmp_path, monkeypatch):
    calls: list[tuple[list[str], str | None]] = []
    monkeypatch.setattr(install.os, "geteuid", lambda: 0)
    monkeypatch.setattr(install.subprocess, "run", _apt(calls, creates=tmp_path / "chromium"))
    ensure_debian_packages(["chromium"], tmp_path / "chromium")
    assert calls == [
        (["apt-get", "update", "-qq"], "noninteractive"),
        (["apt-get", "install", "-y", "-qq", "chromium"], "noninteractive"),
    ]


def test_missing_after_install_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(install.os, "geteuid", lambda: 0)
    monkeypatch.setattr(install.subprocess, "run", _apt([]))
    with pytest.raises(InstallError, match=r"Chromium not found at .*chromium after apt-get install chromium"):
        ensure_debian_packages(["chromium"], tmp_path / "chromium", what="Chromium")


def test_not_root_says_what_to_install(tmp_path, monkeypatch):
    calls: list[tuple[list[str], str | None]] = []
    monkeypatch.setattr(install.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(install.subprocess, "run", _apt(calls))
    with pytest.raises(InstallError, match=r"install Debian's postgresql-15 .* or point iceberg.uri"):
        ensure_debian_packages(
            ["postgresql-15"],
            tmp_path / "postgres",
            what="PostgreSQL server binaries",
            alternative=" or point iceberg.uri",
        )
    assert calls == []
