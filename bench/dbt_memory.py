"""dbt build memory: the peak resident memory of the hourly `dbt build` (Kappa: staging, marts, every test) over an
hour of heavy traffic, at several DuckDB memory limits side by side in one run. JSON out.

A sandboxed catalog gets `--events` generated events (bench/dbt.py's generator) in `raw.http_events`, all of
them within the de-duplication horizon (the window `unique_within` reads) and on one day (the day
`api_health_daily` recomputes): what an hourly build sees after an hour at `--events`/3,600 events/s. Then, for
each limit in `--limits`, the pipeline's own runner (`python -m infra dbt build`, what Dagster runs) builds twice
into a fresh DuckDB file: the first build creates the incremental models, the second reopens the day. The bench
samples the resident memory of the runner's process group (the runner, dbt, DuckDB inside it) every 0.2 s.

Ratios: each limit's peak over the peak of the first limit; each peak above an empty lake's build (the same
runner over 1,000 events).

    python -m bench.dbt_memory                                  # 14.4 million events (4,000/s for an hour)
    python -m bench.dbt_memory --events 3600000 --limits 6g,1g
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np

from bench import stack
from bench.dbt import _hour_of_traffic
from bench.streaming import _sandbox
from config.settings import REPO_ROOT, Settings
from infra.process import _group_members
from lakehouse import iceberg

EVENTS = 14_400_000
LIMITS = ("6g", "1g", "256m")
HOURS = 4  # the events are written as this many hours of bench.dbt's day (its generator's ids are per hour)
SAMPLE_SECONDS = 0.2


def _build(limit: str, horizon_minutes: int) -> dict[str, Any]:
    """One `dbt build` with DuckDB limited to `limit`: its seconds, peak resident MiB and dbt's summary."""
    env = {**os.environ, "PIPELINE_DBT__MEMORY_LIMIT": limit}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra", "dbt", "build", "--vars", f"{{dedup_horizon_minutes: {horizon_minutes}}}"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, sum(stack._proc_stat(pid)[1] for pid in _group_members(proc.pid)))
        time.sleep(SAMPLE_SECONDS)
    reader.join()
    if proc.returncode != 0:
        raise RuntimeError(f"dbt build (memory_limit {limit}) failed:\n{''.join(lines[-60:])}")
    done = [line.split("Done. ", 1)[-1].strip() for line in lines if "Done. PASS=" in line]
    return {"seconds": round(time.monotonic() - started, 1), "peak_rss_mib": round(peak), "result": done[-1]}


def _fill(settings: Settings, events: int) -> None:
    raw = iceberg.load(settings).load_table("raw.http_events")
    schema = raw.schema().as_arrow()
    rng = np.random.default_rng(3)
    hours = HOURS if events >= HOURS else 1
    for hour in range(24 - hours, 24):
        raw.append(_hour_of_traffic(schema, hour, events // hours, rng))
        print(f"raw.http_events: {events // hours} events of hour {hour} written", file=sys.stderr, flush=True)


def run(events: int = EVENTS, limits: tuple[str, ...] = LIMITS) -> dict[str, Any]:
    # every event within the horizon `unique_within` reads: the generated hours and one more
    horizon_minutes = (HOURS + 1) * 60
    builds: dict[str, Any] = {}
    with _sandbox("bench-dbt-memory-empty-", ("catalog",)) as settings:
        _fill(settings, 1_000)
        empty = _build(limits[0], horizon_minutes)
    with _sandbox("bench-dbt-memory-", ("catalog",)) as settings:
        _fill(settings, events)
        database = settings.var_dir / "dbt" / "lake.duckdb"
        for limit in limits:
            first = _build(limit, horizon_minutes)
            again = _build(limit, horizon_minutes)
            builds[limit] = {
                "first": first,
                "again": again,
                "peak_rss_mib": max(first["peak_rss_mib"], again["peak_rss_mib"]),
            }
            print(f"memory_limit {limit}: {builds[limit]['peak_rss_mib']} MiB at most", file=sys.stderr, flush=True)
            for leftover in database.parent.glob("lake.duckdb*"):  # the file, its WAL and its spill folder
                if leftover.is_dir():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()
    reference = builds[limits[0]]["peak_rss_mib"]
    return {
        "events_in_the_hour": events,
        "empty_lake_build_peak_rss_mib": empty["peak_rss_mib"],
        "builds": builds,
        "peak_over_first_limit": {limit: round(b["peak_rss_mib"] / reference, 2) for limit, b in builds.items()},
        "peak_above_empty_lake_mib": {limit: b["peak_rss_mib"] - empty["peak_rss_mib"] for limit, b in builds.items()},
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dbt_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=EVENTS, help="events in the hour (default: %(default)s)")
    parser.add_argument("--limits", default=",".join(LIMITS), help="DuckDB memory limits (default: %(default)s)")
    args = parser.parse_args()
    print(json.dumps(run(args.events, tuple(args.limits.split(","))), indent=2))


if __name__ == "__main__":
    main()
