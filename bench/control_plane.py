"""Control-plane benchmark: what Dagster's sensors cost and how fast the control plane acts, on a real stack
(`python -m infra up`, scratch var/ on free ports, the demo traffic running). JSON out.

- **sensor ticks**: each sensor evaluated `ticks` times with `build_sensor_context` (a fresh cursor, so every
  tick does its full work): median seconds, and that share of the sensor's interval;
- **recovery**: the `streaming` job cancelled through Flink's REST API (what `flink cancel` does) while the
  stack's own daemon runs; seconds until the job runs again from its checkpoint, next to the health sensor's
  interval;
- **replay through Dagster vs the CLI**: one day of generated traffic in raw.http_events, replayed by
  `python -m infra replay streaming DAY` and by materialising that day's partition of the replayed tables (the
  SQL windows' speed tables, `windows_replay`), in one run: Dagster's overhead as a ratio.

    python -m bench.control_plane
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from bench.streaming import DAY_S, _day_of_traffic, _sandbox
from config.settings import REPO_ROOT, Settings
from lakehouse import iceberg

DAY = datetime(2026, 1, 5, tzinfo=UTC)
JOB = "streaming"  # the one streaming job: recovered, and replayed (its SQL windows)


def _sensor_ticks(defs: dg.Definitions, name: str, interval: int, ticks: int) -> dict[str, Any]:
    sensor = defs.resolve_sensor_def(name)
    seconds = []
    with dg.instance_for_test() as instance:
        for _ in range(ticks):
            context = dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
            started = time.monotonic()
            sensor.evaluate_tick(context)
            seconds.append(time.monotonic() - started)
    median = statistics.median(seconds)
    return {
        "median_seconds": round(median, 2),
        "max_seconds": round(max(seconds), 2),
        "interval_seconds": interval,
        "share_of_interval": round(median / interval, 3),
    }


def _recovery(settings: Settings, timeout: float = 300) -> dict[str, Any]:
    from infra import flink_deploy
    from infra.services import flink

    state_file = flink_deploy.job_dir(settings, JOB) / "state.json"
    before = json.loads(state_file.read_text()).get("recoveries", 0)
    lost = flink_deploy.find_job(settings, JOB)
    assert lost is not None
    started = time.monotonic()
    flink.rest(settings, "PATCH", f"/jobs/{lost['jid']}?mode=cancel")
    while time.monotonic() - started < timeout:
        state = json.loads(state_file.read_text())
        found = flink_deploy.find_job(settings, JOB)
        if state.get("recoveries", 0) > before and found and found["state"] == "RUNNING":
            seconds = time.monotonic() - started
            return {
                "seconds_to_running_again": round(seconds, 1),
                "health_interval_seconds": settings.dagster.health_interval_seconds,
                "over_interval": round(seconds / settings.dagster.health_interval_seconds, 2),
                "restored_from_checkpoint_of_the_cancelled_job": f"/{lost['jid']}/chk-" in str(state["restored_from"]),
            }
        time.sleep(1)
    raise RuntimeError(f"{JOB} not recovered within {timeout} s")


def _replays(settings: Settings, defs: dg.Definitions, rate: float) -> dict[str, Any]:
    raw = iceberg.load(settings).load_table("raw.http_events")
    events = _day_of_traffic(raw.schema().as_arrow(), DAY, rate, seed=5)
    raw.append(events)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "infra", "replay", JOB, f"{DAY:%Y-%m-%d}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    cli_s = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"replay failed:\n{proc.stderr[-3000:]}")
    replay_asset = defs.resolve_assets_def(dg.AssetKey(["iceberg", "speed", "api_requests_per_minute"]))
    started = time.monotonic()
    result = dg.materialize([replay_asset], partition_key=f"{DAY:%Y-%m-%d}", raise_on_error=True)
    dagster_s = time.monotonic() - started
    rows = {
        m.asset_key.to_user_string(): m.metadata["rows"].value
        for m in (e.materialization for e in result.get_asset_materialization_events())
    }
    return {
        "day": f"{DAY:%Y-%m-%d}",
        "events": events.num_rows,
        "cli_seconds": round(cli_s, 1),
        "dagster_seconds": round(dagster_s, 1),
        "dagster_over_cli": round(dagster_s / cli_s, 2),
        "rows_per_table": rows,
        "multiple_of_real_time_through_dagster": round(DAY_S / dagster_s, 1),
    }


def run(ticks: int = 5, rate: float = 10.0) -> dict[str, Any]:
    from dagster_project.definitions import build_definitions

    with _sandbox("bench-control-plane-") as settings:
        defs = build_definitions(settings)
        d = settings.dagster
        return {
            "sensors": {
                "flink_jobs_on_failure": _sensor_ticks(defs, "flink_jobs_on_failure", d.health_interval_seconds, ticks),
                "streaming_on_staleness_or_lag": _sensor_ticks(
                    defs, "streaming_on_staleness_or_lag", d.checks_interval_seconds, ticks
                ),
            },
            "recovery": _recovery(settings),
            "replay": _replays(settings, defs, rate),
        }


def main() -> None:
    print(json.dumps(run(), indent=2))


if __name__ == "__main__":
    main()
