"""Chaos on a real stack, with nobody running `make up` or a Dagster run: under steady traffic of known events
(bench/chaos.py: every 25th delivered twice, every 100th malformed, every 150th two hours late), SIGKILL of the
TaskManager, the JobManager, the Kafka broker, the catalog's PostgreSQL, the Dagster daemon and the code server,
one at a time, then the TaskManager and the broker together. The supervisor brings each back (a new process,
counted once); the streaming job runs again (after the JobManager's restart, resubmitted by the supervisor from
its latest checkpoint, which Dagster's sensor records); `raw.http_events` holds exactly the known events, the
dead letters exactly the malformed messages, and each event is counted in its minute window or recorded late
for it, once (the two-hours-late ones read again after a restore included). How fast is bench/chaos.py's to say
(no timed assertions here).

The run happens once (a module fixture); each test asserts one promise of it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pytest

from bench import chaos
from dagster_project.defs.keys import RECOVERY_TAG
from infra import flink_deploy, supervision
from infra.services import dagster as dagster_service
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

# the sensors look every 5 s here (30 s by default)
STACK_ENV = {"PIPELINE_DAGSTER__HEALTH_INTERVAL_SECONDS": "5"}


@dataclass
class Run:
    scenarios: list[dict[str, Any]]
    final: dict[str, Any]
    recovery_runs_before: int
    status_while_down: tuple[int, str]


def _recovery_runs(stack) -> int:
    """Recovery runs in the stack's Dagster instance (a schedule's run may come and go meanwhile)."""
    with dg.DagsterInstance.from_config(str(dagster_service.dagster_home(stack.settings))) as instance:
        return sum(RECOVERY_TAG in record.dagster_run.tags for record in instance.get_run_records())


def _status(stack, seen: list[tuple[int, str]]) -> Callable[[], None]:
    def look() -> None:
        proc = stack.cli("status", timeout=60)
        seen.append((proc.returncode, proc.stdout))

    return look


@pytest.fixture(scope="module")
def run(stack) -> Iterator[Run]:
    s = stack.settings
    before = _recovery_runs(stack)
    traffic = chaos.Traffic(s, rate=50)
    traffic.start()
    scenarios: list[dict[str, Any]] = []
    status: list[tuple[int, str]] = []
    try:
        time.sleep(10)
        for target in chaos.TARGETS:
            # right after the first kill, before the TaskManager is back: what `make status` says
            look = _status(stack, status) if target == "taskmanager" else None
            scenarios.append(chaos.kill_and_recover(s, traffic, target, timeout=300, while_down=look))
            time.sleep(5)
    finally:
        traffic.stop()
    yield Run(scenarios, chaos.settle(s, traffic), before, status[0])


def test_each_killed_process_comes_back_and_the_job_runs_again(run):
    for result in run.scenarios:
        assert result["services_back_s"] is not None, result
        assert result["job_running_s"] is not None and result["first_event_committed_s"] is not None, result
        assert set(result["restarts"].values()) == {1}, result  # each killed process started once again


def test_the_supervisor_restarted_each_process_once_per_kill_and_nothing_else(run, stack):
    services = supervision.read_state(stack.settings)["services"]
    restarts = {name: entry["restarts"] for name, entry in services.items() if entry["restarts"]}
    assert restarts == {
        "flink-taskmanager": 2,
        "kafka": 2,
        "flink-jobmanager": 1,
        "postgres": 1,
        "dagster-daemon": 1,
        "dagster-code-server": 1,
    }, restarts


def test_status_says_unhealthy_while_a_process_is_down_and_healthy_after(run, stack):
    code, text = run.status_while_down
    assert code == 1, text[-3000:]
    line = next(ln for ln in text.splitlines() if ln.startswith("flink-taskmanager "))
    assert "UNHEALTHY" in line and "stack: UNHEALTHY" in text, text[-3000:]
    after = stack.cli("status", "--json", timeout=120)
    assert after.returncode == 0, after.stdout[-3000:]


def test_raw_events_hold_exactly_the_known_events(run):
    final = run.final
    assert final["producer_failures"] == [], final
    assert final["raw_lost"] == 0 and final["raw_duplicated"] == 0 and final["raw_unknown"] == 0, final
    assert final["raw_rows"] == final["sent_valid"] and final["sent_twice"] > 0, final


def test_dead_letters_hold_exactly_the_malformed_messages(run):
    assert run.final["dead_letters"] == run.final["malformed_sent"] > 0, run.final


def test_no_event_is_counted_twice_in_a_minute_window(run):
    """Per minute and status: counted in the window plus recorded late for it never exceeds what was sent."""
    for window in ("minute_window", "route_minute_window"):
        assert run.final[window]["extra"] == 0, json.dumps(run.final[window])


def test_every_event_is_counted_in_its_minute_window_or_recorded_late_once(run):
    """Late events read again after a restore included: the split keeps its watermark across the restore
    (unique_events.sql), so none of them reaches a restored window that drops it."""
    for window in ("minute_window", "route_minute_window"):
        assert run.final[window]["exact"], json.dumps(run.final[window])


def test_the_supervisor_resubmitted_the_job_after_the_jobmanager_and_dagster_recorded_it(run, stack):
    recovery = flink_deploy.status(stack.settings, "streaming").last_recovery
    assert recovery["by"] == "supervisor" and "/chk-" in str(recovery["restored_from"]), recovery

    def recorded() -> list[str]:
        with dg.DagsterInstance.from_config(str(dagster_service.dagster_home(stack.settings))) as instance:
            records = instance.fetch_observations(dg.AssetKey(["flink", "streaming"]), limit=100).records
            return [
                str(r.asset_observation.metadata["last_recovery_by"].value)
                for r in records
                if r.asset_observation and "last_recovery_by" in r.asset_observation.metadata
            ]

    wait_for(lambda: "supervisor" in recorded(), 60, "Dagster's record of the supervisor's recovery")
    # no Dagster recovery run was needed: the supervisor did it all
    assert _recovery_runs(stack) == run.recovery_runs_before
