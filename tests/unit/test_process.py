"""The process manager on real processes: idempotent start, whole-group stop, busy ports named."""

from __future__ import annotations

import socket
import sys
import time

import pytest

from infra.process import ManagedProcess, PortSpec, ServiceError, _group_alive, ensure_port_free, free_port


def _proc(tmp_path, name="sleeper", argv=None, **kwargs):
    return ManagedProcess(
        name=name,
        argv=argv or [sys.executable, "-c", "import time; time.sleep(60)"],
        log_file=tmp_path / "log" / f"{name}.log",
        run_dir=tmp_path / "run",
        stop_timeout=5,
        **kwargs,
    )


def test_start_is_idempotent_and_stop_kills_the_group(tmp_path):
    # the service spawns a child of its own: stopping must take both
    code = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    )
    proc = _proc(tmp_path, argv=[sys.executable, "-c", code])
    pid = proc.start()
    assert proc.start() == pid  # a second start starts nothing
    assert proc.is_running()
    assert proc.stop() is True
    assert not _group_alive(pid)
    assert not proc.pid_file.exists()
    assert proc.stop() is False  # stopping a stopped service is fine


def test_service_ignoring_sigterm_is_killed(tmp_path):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    proc = _proc(tmp_path, argv=[sys.executable, "-c", code])
    proc.stop_timeout = 1
    pid = proc.start()
    proc.stop()
    assert not _group_alive(pid)


def test_stale_pid_file_is_ignored(tmp_path):
    proc = _proc(tmp_path)
    proc.run_dir.mkdir(parents=True)
    proc.pid_file.write_text('{"pid": 999999, "start_ticks": 1}')
    assert proc.pid() is None
    assert not proc.pid_file.exists()


def test_busy_port_names_the_port_and_the_key():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ServiceError) as err:
            ensure_port_free(PortSpec("127.0.0.1", port, "kafka.port"))
    message = str(err.value)
    assert f"port {port}" in message and "`kafka.port`" in message and "PIPELINE_KAFKA__PORT" in message


def test_start_refuses_a_busy_port(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc = _proc(tmp_path, ports=[PortSpec("127.0.0.1", port, "dagster.port")])
        with pytest.raises(ServiceError, match=r"dagster\.port"):
            proc.start()
    assert not proc.is_running()


def test_unhealthy_service_is_stopped_with_its_log(tmp_path):
    proc = _proc(
        tmp_path,
        argv=[sys.executable, "-c", "print('boom'); raise SystemExit(3)"],
        health=lambda: False,
        start_timeout=5,
    )
    with pytest.raises(ServiceError) as err:
        proc.start()
    assert "boom" in str(err.value)
    assert not proc.is_running()


def test_free_port_is_free():
    port = free_port()
    ensure_port_free(PortSpec("127.0.0.1", port, "demo.port"))


def _environment_of(tmp_path, monkeypatch, name, set_outside=None):
    if set_outside is None:
        monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    else:
        monkeypatch.setenv("MALLOC_ARENA_MAX", set_outside)
    out = tmp_path / f"{name}.env"
    code = f"import os, pathlib; pathlib.Path({str(out)!r}).write_text(os.environ.get('MALLOC_ARENA_MAX', '-'))"
    proc = _proc(tmp_path, name=name, argv=[sys.executable, "-c", code])
    proc.start()
    deadline = time.monotonic() + 10
    while not (out.exists() and out.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.stop()
    return out.read_text()


def test_services_run_with_two_malloc_arenas_unless_the_environment_says_otherwise(tmp_path, monkeypatch):
    assert _environment_of(tmp_path, monkeypatch, "default") == "2"
    assert _environment_of(tmp_path, monkeypatch, "chosen", set_outside="4") == "4"
