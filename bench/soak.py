"""Soak benchmark on the whole stack: 10 million events at a steady rate, then the stack left running; memory,
state on disk, lag and restarts over time; JSON and a PNG plot.

A sandboxed stack (`python -m infra up`, every service, the demo shop and its traffic included) takes
`--events` events from the load generator (bench/load.py, a process of its own) at `--rate` events/s, then runs
on for `--after` seconds with only the demo's traffic. Every `--interval` seconds the bench records the resident
memory of every service (and the total), the streaming job's consumer lag, its restarts (Flink's `numRestarts`,
and TaskManager processes that changed), the size of its last checkpoint and of the RocksDB directory.

What it judges:
- every event landed: raw.http_events holds each of the soak's event ids exactly once, counted once the job has
  read past the load's last event (it waits up to `--catch-up` seconds for that, and reports how long it took);
- no restart: the job's restarts and the TaskManager's pid did not change over the run;
- flat memory: the services' resident memory (RSS, and PSS: shared pages divided among their processes), its
  least-squares trend over the run's second half and after the load, in MiB per hour, and its highest reading
  against the 3 GiB goal; Dagster's runs (the hourly dbt build: the run worker, dbt and DuckDB, bounded by
  `dbt.memory_limit`) are children of the code server, counted apart as `dagster-runs`, and the peak with them;
- bounded state: RocksDB's directory and the last checkpoint at the end against their highest readings (the
  de-duplication state is bounded by `streaming.dedup_horizon_minutes`; a horizon shorter than the run shows
  the state level off).

    python -m bench.soak                                   # 10,000,000 events at 5,000/s, then 20 minutes
    python -m bench.soak --events 2000000 --rate 4000 --after 300 --plot var/tmp/soak.png
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import stack
from bench.throughput import _trend
from config.settings import REPO_ROOT, Settings
from flink_jobs import JOBS
from infra import flink_deploy
from infra.services import flink
from lakehouse import duckdb_views

EVENTS = 10_000_000
RATE = 5_000  # the highest rate the stack sustains (docs/benchmarks.md)
AFTER_SECONDS = 1200
CATCH_UP_SECONDS = 1800
INTERVAL_SECONDS = 10.0
MEMORY_GOAL_MIB = 3 * 1024
DEFAULT_PLOT = REPO_ROOT / "var" / "bench" / "soak.png"
JOB = "streaming"


def _dir_mib(path: Path) -> float:
    """Bytes under `path` in MiB. RocksDB deletes files and whole checkpoint folders meanwhile: os.walk skips a
    folder that vanished (Path.rglob raised FileNotFoundError from scandir and ended a soak after 34 minutes)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue
    return round(total / 2**20, 1)


def _job(settings: Settings) -> dict[str, Any]:
    """The job's state, Flink's restarts and its last completed checkpoint's full size."""
    status = flink_deploy.status(settings, JOB)
    checkpoint_mib = None
    if status.job_id and status.state != "NOT_RUNNING":
        latest = flink.rest(settings, "GET", f"/jobs/{status.job_id}/checkpoints").get("latest") or {}
        completed = latest.get("completed") or {}
        if "state_size" in completed:
            checkpoint_mib = round(completed["state_size"] / 2**20, 1)
    return {"state": status.state, "restarts": status.restarts, "checkpoint_mib": checkpoint_mib}


def _sample(st: stack.Stack, started: float) -> dict[str, Any]:
    end, committed = stack.job_positions(st.settings)
    usage = stack.service_usage(st.var_dir)
    status = _job(st.settings)
    position = committed.get(JOB)
    return {
        "t": round(time.time() - started, 1),
        "end": end,
        "lag": None if position is None else end - position,
        "rss_mib": {name: u["rss_mib"] for name, u in usage.items()},
        "total_rss_mib": round(sum(u["rss_mib"] for u in usage.values()), 1),
        "services_rss_mib": round(sum(u["rss_mib"] for name, u in usage.items() if name != stack.RUNS), 1),
        "services_pss_mib": round(sum(u["pss_mib"] for name, u in usage.items() if name != stack.RUNS), 1),
        "total_pss_mib": round(sum(u["pss_mib"] for u in usage.values()), 1),
        "taskmanager_pid": stack.service_pids(st.var_dir).get("flink-taskmanager"),
        "restarts": status["restarts"],
        "state": status["state"],
        "checkpoint_mib": status["checkpoint_mib"],
        "rocksdb_mib": _dir_mib(st.var_dir / "flink" / "rocksdb"),
    }


def _landed(st: stack.Stack, service: str) -> tuple[int, int]:
    with duckdb_views.connect(st.settings) as con:
        row = con.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM raw.http_events WHERE service = $1", [service]
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _plot(samples: list[dict[str, Any]], load_end_t: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    minutes = [s["t"] / 60 for s in samples]
    fig, (mem, state, lag) = plt.subplots(3, 1, figsize=(11, 10), sharex=True)
    names = sorted({n for s in samples for n in s["rss_mib"]})
    for name in names:
        mem.plot(minutes, [s["rss_mib"].get(name, 0) for s in samples], label=name, linewidth=1)
    mem.plot(minutes, [s["services_rss_mib"] for s in samples], label="services", color="black", linewidth=2)
    mem.plot(minutes, [s["total_rss_mib"] for s in samples], label="with Dagster runs", color="grey", linewidth=1)
    mem.plot(minutes, [s["services_pss_mib"] for s in samples], label="services (PSS)", color="black", linestyle="--")
    mem.axhline(MEMORY_GOAL_MIB, color="red", linestyle="--", linewidth=1, label="goal (3 GiB)")
    mem.set_ylabel("resident MiB")
    mem.legend(fontsize=7, ncol=3, loc="upper left")
    state.plot(minutes, [s["rocksdb_mib"] for s in samples], label="RocksDB directory")
    state.plot(minutes, [s["checkpoint_mib"] or 0 for s in samples], label="last checkpoint (full size)")
    state.set_ylabel("MiB")
    state.legend(fontsize=8, loc="upper left")
    lag.plot(minutes, [s["lag"] or 0 for s in samples], label=f"{JOB} consumer lag")
    restarts = [s["t"] / 60 for i, s in enumerate(samples) if i and s["restarts"] != samples[i - 1]["restarts"]]
    for at in restarts:
        lag.axvline(at, color="red", linewidth=1)
    lag.set_ylabel("events behind")
    lag.set_xlabel("minutes since the start (load ends at the dotted line; red: a restart)")
    for ax in (mem, state, lag):
        ax.axvline(load_end_t / 60, color="grey", linestyle=":", linewidth=1)
        ax.grid(alpha=0.3)
    lag.legend(fontsize=8, loc="upper left")
    fig.suptitle("Soak: memory, state and lag over time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _mib_per_hour(samples: list[dict[str, Any]], key: str) -> float:
    return _trend([(s["t"], s[key]) for s in samples]) * 3600 if len(samples) > 1 else 0.0


def _caught_up(samples: list[dict[str, Any]], position: int) -> float | None:
    """The time of the first sample at which the job's committed position had reached `position`."""
    for sample in samples:
        if sample["lag"] is not None and sample["end"] - sample["lag"] >= position:
            return float(sample["t"])
    return None


def run(
    events: int, rate: int, after: float, interval: float, plot: Path, catch_up: float = CATCH_UP_SECONDS
) -> dict[str, Any]:
    with stack.sandboxed("soak-") as st:
        service = f"soak-{int(time.time())}"
        started = time.time()
        samples = [_sample(st, started)]
        load = subprocess.Popen(
            [sys.executable, "-m", "bench.load", "--service", service, "--rate", str(rate), "--seconds",
             str(events / rate)],
            cwd=REPO_ROOT, env=st.env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        while load.poll() is None:
            time.sleep(interval)
            samples.append(_sample(st, started))
            last = samples[-1]
            print(
                f"soak t={last['t']:.0f}s end={last['end']} lag={last['lag']} rss={last['total_rss_mib']} MiB "
                f"rocksdb={last['rocksdb_mib']} MiB restarts={last['restarts']}",
                file=sys.stderr, flush=True,
            )  # fmt: skip
        out, _ = load.communicate()
        if load.returncode != 0:
            raise RuntimeError(f"bench.load failed (exit {load.returncode})")
        sent = json.loads(out.strip().splitlines()[-1])
        load_end_t = time.time() - started
        load_end_position = _sample(st, started)["end"]
        until = time.time() + after
        while time.time() < until:
            time.sleep(interval)
            samples.append(_sample(st, started))
        # the count judges what landed, not what is still on its way: first the job reads past the load's last
        # event (its committed position, at most `catch_up` seconds more)
        caught_up_t = _caught_up(samples, load_end_position)
        deadline = time.time() + catch_up
        while caught_up_t is None and time.time() < deadline:
            time.sleep(interval)
            samples.append(_sample(st, started))
            caught_up_t = _caught_up(samples, load_end_position)
            print(f"soak catching up: lag={samples[-1]['lag']}", file=sys.stderr, flush=True)
        time.sleep(2 * st.settings.flink.checkpoint_interval_seconds)  # its last rows committed
        rows, distinct = _landed(st, service)
    second_half = [s for s in samples if s["t"] >= samples[-1]["t"] / 2]
    after_load = [s for s in samples if s["t"] >= load_end_t]
    peak = max(s["total_rss_mib"] for s in samples)
    restarts = samples[-1]["restarts"] - samples[0]["restarts"]
    tm_pids = {s["taskmanager_pid"] for s in samples}
    result = {
        "events": {"sent": sent["sent"], "rate": sent["events_per_second"], "rows": rows, "distinct": distinct},
        "every_event_once": rows == distinct == sent["sent"],
        "duration_s": round(samples[-1]["t"], 1),
        "after_load_s": round(after, 1),
        # seconds from the load's end until the job had read past its last event (None: not within catch_up)
        "caught_up_after_load_s": None if caught_up_t is None else round(caught_up_t - load_end_t, 1),
        "restarts": restarts,
        "taskmanager_processes": len(tm_pids),
        "no_restart": restarts == 0 and len(tm_pids) == 1 and all(s["state"] == "RUNNING" for s in samples[1:]),
        "memory": {
            # the services: every long-running process of the stack (Dagster's runs counted apart, below)
            "services_rss_mib_peak": max(s["services_rss_mib"] for s in samples),
            "services_rss_mib_end": samples[-1]["services_rss_mib"],
            "services_pss_mib_peak": max(s["services_pss_mib"] for s in samples),
            "services_pss_mib_end": samples[-1]["services_pss_mib"],
            # flat: the least-squares trend of the services' resident memory, over the run's second half and over
            # the time after the load (the stack running on with the demo's traffic only)
            "services_trend_second_half_mib_per_hour": round(_mib_per_hour(second_half, "services_rss_mib"), 1),
            "services_trend_after_load_mib_per_hour": round(_mib_per_hour(after_load, "services_rss_mib"), 1),
            # with the Dagster runs (the hourly dbt build: its run worker and dbt with DuckDB) while they last
            "total_rss_mib_peak": peak,
            "total_pss_mib_peak": max(s["total_pss_mib"] for s in samples),
            "total_rss_mib_end": samples[-1]["total_rss_mib"],
            "runs_rss_mib_peak": max(s["rss_mib"].get(stack.RUNS, 0) for s in samples),
            "peak_by_service_mib": {
                name: max(s["rss_mib"].get(name, 0) for s in samples) for name in samples[-1]["rss_mib"]
            },
            "goal_mib": MEMORY_GOAL_MIB,
            "services_peak_over_goal": round(max(s["services_rss_mib"] for s in samples) / MEMORY_GOAL_MIB, 3),
            "peak_over_goal": round(peak / MEMORY_GOAL_MIB, 3),
        },
        "state": {
            "rocksdb_mib_peak": max(s["rocksdb_mib"] for s in samples),
            "rocksdb_mib_end": samples[-1]["rocksdb_mib"],
            "checkpoint_mib_peak": max(s["checkpoint_mib"] or 0 for s in samples),
            "checkpoint_mib_end": samples[-1]["checkpoint_mib"],
            "dedup_horizon_minutes": st.settings.streaming.dedup_horizon_minutes,
        },
        "lag_end": samples[-1]["lag"],
        "lag_max": max((s["lag"] or 0) for s in samples),
        "plot": str(plot),
        "samples": samples,
    }
    _plot(samples, load_end_t, plot)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--rate", type=int, default=RATE)
    parser.add_argument("--after", type=float, default=AFTER_SECONDS, help="seconds to keep running after the load")
    parser.add_argument(
        "--catch-up", type=float, default=CATCH_UP_SECONDS, help="at most this long for the job to read the last event"
    )
    parser.add_argument("--interval", type=float, default=INTERVAL_SECONDS)
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT)
    parser.add_argument("--json", type=Path, help="also write the JSON (with every sample) here")
    args = parser.parse_args()
    if sorted(JOBS) != [JOB]:
        parser.error(f"the soak follows the one streaming job; the registry holds {sorted(JOBS)}")
    result = run(args.events, args.rate, args.after, args.interval, args.plot, args.catch_up)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))


if __name__ == "__main__":
    main()
