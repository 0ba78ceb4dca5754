"""The supervisor on real processes: what dies unexpectedly comes back (health-gated, after a growing backoff,
after what it needs), what `down` stopped stays stopped, a service that keeps dying is given up on with a
named reason, and a new supervisor adopts what an earlier one started."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from config.settings import Settings, load_settings
from infra import supervision
from infra.process import ManagedProcess, ServiceError
from infra.supervisor import Supervisor, Unit
from tests.waiting import wait_for

SLEEPER = [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(600)"]


def _settings(tmp_path: Path, **supervisor: float) -> Settings:
    knobs = {"initial_backoff_seconds": 0.2, "max_backoff_seconds": 1.0, "poll_interval_seconds": 0.1}
    return load_settings(paths={"var_dir": str(tmp_path / "var")}, supervisor={**knobs, **supervisor})


def _proc(settings: Settings, name: str, argv: list[str] | None = None, **kwargs: object) -> ManagedProcess:
    return ManagedProcess(
        name=name,
        argv=argv or SLEEPER,
        log_file=settings.log_dir / f"{name}.log",
        run_dir=settings.run_dir,
        stop_timeout=5,
        start_timeout=10,
        ready_line="ready",
        **kwargs,  # type: ignore[arg-type]
    )


class Running:
    """A supervisor in a thread of the test, over the given units."""

    def __init__(self, settings: Settings, units: list[Unit]) -> None:
        self.settings = settings
        self.supervisor = Supervisor(settings, units)
        self.thread = threading.Thread(target=self.supervisor.run, daemon=True)
        self.thread.start()

    def up(self, name: str) -> dict[str, object]:
        request = supervision.want(self.settings, name)
        return supervision.await_answer(self.settings, name, request, timeout=30)

    def entry(self, name: str) -> dict[str, object]:
        return dict(supervision.read_state(self.settings).get("services", {}).get(name, {}))

    def stop(self) -> None:
        self.supervisor.stopping.set()
        self.thread.join(10)


@pytest.fixture
def supervise() -> Iterator[Callable[..., Running]]:
    """Start a supervisor over units; at the end it stops, and so does every process it kept."""
    started: list[Running] = []

    def start(settings: Settings, *units: Unit) -> Running:
        started.append(Running(settings, list(units)))
        return started[-1]

    yield start
    for running in started:
        running.stop()
        for keeper in running.supervisor.keepers.values():
            keeper.proc.stop()


def test_a_killed_service_comes_back_and_its_exit_is_recorded(tmp_path, supervise):
    settings = _settings(tmp_path)
    proc = _proc(settings, "svc")
    sup = supervise(settings, Unit(proc))
    first = sup.up("svc")["pid"]
    assert isinstance(first, int)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: (e := sup.entry("svc")).get("state") == "running" and e.get("pid") not in (None, first), 20,
             "the service to run again")  # fmt: skip
    entry = sup.entry("svc")
    assert entry["restarts"] == 1
    assert entry["last_exit"]["status"] == "killed by SIGKILL"  # type: ignore[index]
    assert proc.pid() == entry["pid"]


def test_what_down_stopped_is_not_started_again(tmp_path, supervise):
    settings = _settings(tmp_path)
    proc = _proc(settings, "svc")
    sup = supervise(settings, Unit(proc))
    pid = sup.up("svc")["pid"]
    assert supervision.stop(settings, proc) is True
    time.sleep(1.5)  # several looks of the supervisor, longer than its backoff
    assert proc.pid() is None and sup.entry("svc")["state"] == "stopped"
    assert sup.entry("svc")["restarts"] == 0 and pid


def test_a_service_that_keeps_dying_is_given_up_on_naming_the_reason(tmp_path, supervise):
    settings = _settings(tmp_path, restart_budget=3)
    # healthy at first (its ready line), then it dies as a JVM does when its heap runs out
    dies = "import time; print('ready', flush=True); time.sleep(1.5); "
    dies += "print('Terminating due to java.lang.OutOfMemoryError: Java heap space', flush=True); raise SystemExit(3)"
    proc = _proc(settings, "oom", argv=[sys.executable, "-c", dies])
    sup = supervise(settings, Unit(proc))
    sup.up("oom")
    wait_for(lambda: sup.entry("oom").get("state") == "gave-up", 30, "the supervisor to give up")
    entry = sup.entry("oom")
    assert entry["restarts"] == 3
    error = str(entry["error"])
    assert "oom ended 4 times within 15 minutes" in error, error
    assert "exit code 3, OutOfMemoryError" in error, error
    assert entry["last_exit"]["reason"].startswith("OutOfMemoryError")  # type: ignore[index]
    # the waits between the restarts grew: 0.2, 0.4, 0.8 s
    log = (settings.log_dir / "oom.log").read_text()
    assert log.count("Terminating due to") == 4
    time.sleep(1.5)
    assert sup.entry("oom")["state"] == "gave-up" and proc.pid() is None  # it stays given up
    # until the next `up`, which starts it again with a fresh budget
    supervision.want(settings, "oom")
    wait_for(lambda: (settings.log_dir / "oom.log").read_text().count("ready") > 4, 10, "a start after `up`")


def test_restarts_wait_longer_each_time(tmp_path, supervise):
    settings = _settings(tmp_path, initial_backoff_seconds=0.5, max_backoff_seconds=10, backoff_multiplier=2)
    proc = _proc(settings, "svc")
    sup = supervise(settings, Unit(proc))
    sup.up("svc")
    waits = []
    for restart in (1, 2, 3):
        os.kill(int(sup.entry("svc")["pid"]), signal.SIGKILL)  # type: ignore[arg-type]
        wait_for(lambda r=restart: sup.entry("svc").get("restarts") == r and sup.entry("svc")["state"] == "running",
                 30, f"restart {restart}")  # fmt: skip
        entry = sup.entry("svc")
        # from the exit the supervisor saw to the restart it began
        waits.append(entry["recent_restarts"][-1] - entry["last_exit"]["at"])  # type: ignore[index]
    # 0.5, 1 and 2 s (each within one look of the supervisor, 0.1 s)
    assert all(abs(w - want) < 0.25 for w, want in zip(waits, (0.5, 1.0, 2.0), strict=True)), waits


def test_a_dependent_waits_for_what_it_needs(tmp_path, supervise):
    settings = _settings(tmp_path, initial_backoff_seconds=0.2)
    slow = [sys.executable, "-c", "import time; time.sleep(2); print('ready', flush=True); time.sleep(600)"]
    base = _proc(settings, "base", argv=slow)
    dependent = _proc(settings, "dependent")
    sup = supervise(settings, Unit(base), Unit(dependent, after=("base",)))
    sup.up("base")
    sup.up("dependent")
    os.killpg(int(sup.entry("base")["pid"]), signal.SIGKILL)  # type: ignore[arg-type]
    os.killpg(int(sup.entry("dependent")["pid"]), signal.SIGKILL)  # type: ignore[arg-type]
    wait_for(lambda: sup.entry("dependent").get("state") == "waiting", 10, "the dependent to wait")
    assert sup.entry("base")["state"] in ("backoff", "starting")
    wait_for(lambda: sup.entry("dependent").get("state") == "running", 20, "the dependent to run again")
    base_started = float(sup.entry("base")["started_at"])  # type: ignore[arg-type]
    assert float(sup.entry("dependent")["started_at"]) >= base_started + 2  # type: ignore[arg-type]


def test_a_start_that_fails_is_reported_to_up_with_the_log(tmp_path, supervise):
    settings = _settings(tmp_path)
    proc = _proc(settings, "broken", argv=[sys.executable, "-c", "print('bad configuration: x'); raise SystemExit(2)"])
    sup = supervise(settings, Unit(proc))
    with pytest.raises(ServiceError, match="bad configuration: x"):
        sup.up("broken")
    time.sleep(1)
    assert sup.entry("broken")["state"] == "failed" and sup.entry("broken")["restarts"] == 0


def test_a_new_supervisor_adopts_what_runs_and_keeps_it_alive(tmp_path, supervise):
    settings = _settings(tmp_path)
    proc = _proc(settings, "svc")
    first = supervise(settings, Unit(proc))
    pid = first.up("svc")["pid"]
    first.stop()  # the supervisor ends; the service runs on
    assert proc.pid() == pid
    second = supervise(settings, Unit(proc))

    def adopted() -> bool:
        state = supervision.read_state(settings)
        started = state.get("supervisor", {}).get("started_at")
        return started == second.supervisor.started_at and state["services"]["svc"]["pid"] == pid

    wait_for(adopted, 10, "the new supervisor to adopt the service")
    os.kill(int(pid), signal.SIGKILL)  # type: ignore[arg-type]
    wait_for(lambda: (e := second.entry("svc")).get("state") == "running" and e.get("pid") not in (None, pid),
             20, "the adopted service to run again")  # fmt: skip
    entry = second.entry("svc")
    assert entry["last_exit"]["status"] == "ended (exit status unknown: adopted)"  # type: ignore[index]
    assert entry["restarts"] == 1
    # one that ends while no supervisor watches is recorded as ended by the next one, then started again
    second.stop()
    os.kill(int(entry["pid"]), signal.SIGKILL)  # type: ignore[arg-type]
    third = supervise(settings, Unit(proc))
    wait_for(lambda: third.entry("svc").get("restarts") == 2 and third.entry("svc")["state"] == "running", 20,
             "the service to run again under a third supervisor")  # fmt: skip
    assert third.entry("svc")["last_exit"]["at"] > entry["last_exit"]["at"]  # type: ignore[index]
