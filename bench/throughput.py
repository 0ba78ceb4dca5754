"""Throughput benchmark on the whole stack: rate steps, a burst, freshness under load; JSON and a PNG plot.

A sandboxed stack (`python -m infra up`: Kafka, the catalog, the Flink cluster with every job, Dagster, the demo
shop and its traffic) takes events from a load generator in a process of its own (bench/load.py, on the same two
cores, as a service's traffic would share a machine with nothing): rate steps (default 1,000, 2,000, 5,000 for
10 minutes, 10,000 events/s), then a burst of 300,000 events as fast as the generator goes. Every 2 s the bench
reads each job's committed position in the topic (its consumer group, committed on each checkpoint) and the
resident memory and CPU time of every service.

Per step and job: events consumed, consumer lag at the end and at most in the step's second half, the lag's trend
there (events/s), whether the lag stayed bounded (at most 2 checkpoints' worth of the step's rate plus 1,000, and
a trend below 2 % of the rate), and the CPU seconds per 1,000 events of the job's own threads in the TaskManager
(`jcmd Thread.print`, by the names of its tasks; its Python workers added for a job that runs Python), next to
GC, JIT and the rest (`shared`). The highest rate each job (and the whole pipeline) kept up with. The burst: how
long after the generator's last event each job had committed everything (goal < 60 s). Freshness at the 5,000
events/s step: `raw.http_events` (commit of the snapshot that added a row - its event time, for the step's own
events; goal p99 <= 15 s), and every window table (commit - window end, for each window that ended during the
step; goal p99 <= 20 s).

    python -m bench.throughput                                  # the steps of the issue, then the burst
    python -m bench.throughput --steps 1000:60,5000:120 --burst 100000 --plot var/tmp/throughput.png
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from bench import stack
from bench.streaming import _ms, _percentiles, _rows_with_commit_ms
from config.settings import REPO_ROOT, Settings
from flink_jobs import JOBS
from lakehouse import iceberg

STEPS: tuple[tuple[int, int], ...] = ((1_000, 180), (2_000, 180), (5_000, 600), (10_000, 180))
BURST_EVENTS = 300_000
GOAL_RATE = 5_000
STRETCH_RATE = 10_000
BURST_CATCH_UP_GOAL_S = 60.0
RAW_P99_GOAL_S = 15.0
WINDOW_P99_GOAL_S = 20.0
SAMPLE_SECONDS = 2.0
RATE_SPAN_SECONDS = 20.0
SETTLE_SECONDS = 60.0
DEFAULT_PLOT = REPO_ROOT / "var" / "bench" / "throughput.png"
# the tables the streams append windows to, and the column that says when a row's window ended
WINDOW_TABLES = {
    "speed.api_requests_per_minute": "window_end",
    "speed.api_traffic_sliding_5m": "window_end",
    "speed.user_sessions": "session_end",
    "speed.api_daily_running_totals": "window_end",
    "speed.requests_per_route_minute_firings": "window_end",
    "speed.checkout_funnels": "window_end",
}


@dataclass
class Timeline:
    """What the sampler saw: seconds since the start, the topic's end, each job's committed position, memory."""

    started: float = field(default_factory=time.time)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def sample(self, st: stack.Stack) -> dict[str, Any]:
        end, committed = stack.job_positions(st.settings)
        usage = stack.service_usage(st.var_dir)
        point = {
            "t": round(time.time() - self.started, 1),
            "at": time.time(),
            "end": end,
            "lag": {job: (None if pos is None else end - pos) for job, pos in committed.items()},
            "committed": committed,
            "rss_mib": {name: u["rss_mib"] for name, u in usage.items()},
        }
        self.samples.append(point)
        return point

    def between(self, start: float, end: float) -> list[dict[str, Any]]:
        return [s for s in self.samples if start <= s["at"] <= end]


def _load(st: stack.Stack, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.load", *args], cwd=REPO_ROOT, env=st.env, stdout=subprocess.PIPE, text=True
    )


def _wait_sampling(st: stack.Stack, proc: subprocess.Popen[str], timeline: Timeline) -> dict[str, Any]:
    while proc.poll() is None:
        timeline.sample(st)
        time.sleep(SAMPLE_SECONDS)
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"bench.load failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _trend(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, y)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (y - mean_y) for t, y in points) / var if var else 0.0


def _step(st: stack.Stack, timeline: Timeline, rate: int, seconds: int, tag: str) -> dict[str, Any]:
    service = f"bench-{rate}-{tag}"
    threads_before = stack.taskmanager_threads(st.var_dir)
    python_before = stack.python_worker_cpu(st.var_dir)
    usage_before = stack.service_usage(st.var_dir)
    first = timeline.sample(st)
    load = _wait_sampling(st, _load(st, "--service", service, "--rate", str(rate), "--seconds", str(seconds)), timeline)
    last = timeline.sample(st)
    threads_after = stack.taskmanager_threads(st.var_dir)
    python_cpu = stack.python_worker_cpu(st.var_dir) - python_before
    usage_after = stack.service_usage(st.var_dir)
    job_cpu = stack.job_cpu_seconds(st.settings, threads_before, threads_after)
    interval = st.settings.flink.checkpoint_interval_seconds
    second_half = timeline.between(first["at"] + seconds / 2, last["at"])
    jobs: dict[str, Any] = {}
    for job, spec in JOBS.items():
        consumed = (last["committed"][job] or 0) - (first["committed"][job] or 0)
        lags = [(s["t"], s["lag"][job]) for s in second_half if s["lag"][job] is not None]
        max_lag = max((lag for _, lag in lags), default=None)
        trend = _trend([(t, float(lag)) for t, lag in lags])
        cpu = job_cpu[job] + (python_cpu if spec.python else 0.0)
        bounded = max_lag is not None and max_lag <= 2 * interval * rate + 1_000 and trend < 0.02 * rate
        jobs[job] = {
            "events_consumed": consumed,
            "events_per_second_consumed": round(consumed / (last["at"] - first["at"]), 1),
            "lag_at_end": last["lag"][job],
            "max_lag_second_half": max_lag,
            "lag_trend_second_half_events_per_s": round(trend, 1),
            "lag_bounded": bounded,
            "cpu_seconds": round(cpu, 2),
            "cpu_seconds_per_1000_events": round(1000 * cpu / consumed, 3) if consumed > 0 else None,
        }
    return {
        "target_events_per_second": rate,
        "seconds": seconds,
        "service": service,
        "load": load,
        "jobs": jobs,
        "all_jobs_bounded": all(j["lag_bounded"] for j in jobs.values()),
        "taskmanager_shared_cpu_seconds": job_cpu["shared"],
        "python_worker_cpu_seconds": round(python_cpu, 2),
        "cpu_seconds_by_service": {
            name: round(usage_after[name]["cpu_s"] - usage_before.get(name, {"cpu_s": 0.0})["cpu_s"], 2)
            for name in usage_after
        },
        "window": [first["at"], last["at"]],
    }


def _caught_up(
    st: stack.Stack, timeline: Timeline, target: int, since: float, timeout: float
) -> dict[str, float | None]:
    """Seconds after `since` at which each job had committed `target` (the topic's end at that moment)."""
    reached: dict[str, float | None] = dict.fromkeys(JOBS)
    deadline = time.time() + timeout
    while time.time() < deadline and any(v is None for v in reached.values()):
        point = timeline.sample(st)
        for job, pos in point["committed"].items():
            if reached[job] is None and pos is not None and pos >= target:
                reached[job] = round(point["at"] - since, 1)
        time.sleep(1.0)
    return reached


def _freshness(settings: Settings, step: dict[str, Any]) -> dict[str, Any]:
    catalog = iceberg.load(settings)
    start_s, end_s = step["window"]
    service = step["service"]
    raw = _rows_with_commit_ms(catalog.load_table("raw.http_events"), ["event_time"], service)
    raw_latency = _percentiles(
        [
            (c - e) / 1000
            for c, e in zip(raw.column("commit_ms").to_pylist(), _ms(raw.column("event_time")), strict=True)
        ]
        if raw.num_rows
        else []
    )
    result: dict[str, Any] = {
        "raw.http_events": {
            "rows": raw.num_rows,
            "event_time_to_visible": raw_latency,
            "p99_goal_s": RAW_P99_GOAL_S,
            "p99_ratio_to_goal": None
            if raw_latency["p99_s"] is None
            else round(raw_latency["p99_s"] / RAW_P99_GOAL_S, 3),
        }
    }
    lo = pa.scalar(int(start_s * 1e6), pa.timestamp("us", tz="UTC"))
    hi = pa.scalar(int(end_s * 1e6), pa.timestamp("us", tz="UTC"))
    for identifier, end_column in WINDOW_TABLES.items():

        def ended_in_step(rows: pa.Table, column: str = end_column) -> Any:
            return pc.and_(pc.greater_equal(rows[column], lo), pc.less(rows[column], hi))

        rows = _rows_with_commit_ms(catalog.load_table(identifier), [end_column], keep=ended_in_step)
        ends = _ms(rows.column(end_column)) if rows.num_rows else []
        latencies = [(c - e) / 1000 for c, e in zip(rows.column("commit_ms").to_pylist(), ends, strict=True)]
        pct = _percentiles(latencies)
        result[identifier] = {
            "windows_ended_in_step": rows.num_rows,
            "window_end_to_visible": pct,
            "p99_goal_s": WINDOW_P99_GOAL_S,
            "p99_ratio_to_goal": None if pct["p99_s"] is None else round(pct["p99_s"] / WINDOW_P99_GOAL_S, 3),
        }
    return result


def _plot(timeline: Timeline, steps: list[dict[str, Any]], burst: dict[str, Any] | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (lag_ax, rate_ax) = plt.subplots(2, 1, figsize=(12, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    t0 = timeline.started
    for job in JOBS:
        points = [(s["t"], s["lag"][job]) for s in timeline.samples if s["lag"][job] is not None]
        lag_ax.plot([t for t, _ in points], [lag for _, lag in points], label=job, linewidth=1)
    # rates over at least RATE_SPAN_SECONDS (a job's position moves once per checkpoint; two samples can be
    # taken within the same tenth of a second at a step's boundary)
    spans = []
    for i, b in enumerate(timeline.samples):
        a = next((s for s in reversed(timeline.samples[:i]) if b["t"] - s["t"] >= RATE_SPAN_SECONDS), None)
        if a is not None:
            spans.append((a, b))
    rate_ax.plot(
        [b["t"] for _, b in spans],
        [(b["end"] - a["end"]) / (b["t"] - a["t"]) for a, b in spans],
        color="black", linewidth=0.8, label="into the topic",
    )  # fmt: skip
    for job in JOBS:
        consumed = [
            (b["t"], (b["committed"][job] - a["committed"][job]) / (b["t"] - a["t"]))
            for a, b in spans
            if a["committed"][job] is not None and b["committed"][job] is not None
        ]
        rate_ax.plot([t for t, _ in consumed], [r for _, r in consumed], linewidth=0.8, label=f"{job} consumed")
    rate_ax.legend(loc="upper left", fontsize=8)
    for ax in (lag_ax, rate_ax):
        for step in steps:
            ax.axvspan(step["window"][0] - t0, step["window"][1] - t0, alpha=0.08, color="tab:blue")
        if burst:
            ax.axvline(burst["ended_at"] - t0, color="tab:red", linestyle="--", linewidth=1)
    for step in steps:
        lag_ax.annotate(f"{step['target_events_per_second']:,}/s", (step["window"][0] - t0, 0), fontsize=8,
                        xytext=(3, 3), textcoords="offset points")  # fmt: skip
    lag_ax.set_ylabel("consumer lag (events)")
    lag_ax.set_title("Consumer lag per Flink job (committed on checkpoints); shaded: rate steps; dashed: burst end")
    lag_ax.legend(loc="upper left")
    rate_ax.set_ylabel("events/s")
    rate_ax.set_xlabel("seconds since the start")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(
    steps: tuple[tuple[int, int], ...] = STEPS, burst_events: int = BURST_EVENTS, plot: Path = DEFAULT_PLOT
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    timeline = Timeline()
    with stack.sandboxed("bench-throughput-") as st:
        settle_until = time.time() + SETTLE_SECONDS
        while time.time() < settle_until:
            timeline.sample(st)
            time.sleep(SAMPLE_SECONDS)
        results = []
        for rate, seconds in steps:
            results.append(_step(st, timeline, rate, seconds, tag))
            print(f"throughput bench: step {rate}/s done: {json.dumps(results[-1]['jobs'])}", file=sys.stderr)
            # let every job catch up before the next step (bounded by two minutes)
            _caught_up(st, timeline, timeline.sample(st)["end"], time.time(), timeout=120)
        burst: dict[str, Any] | None = None
        if burst_events:
            load = _wait_sampling(
                st, _load(st, "--service", f"bench-burst-{tag}", "--count", str(burst_events)), timeline
            )
            target = timeline.sample(st)["end"]
            catch_up = _caught_up(st, timeline, target, load["ended_at"], timeout=600)
            worst = (
                None
                if any(v is None for v in catch_up.values())
                else max(v for v in catch_up.values() if v is not None)
            )
            burst = {
                "events": burst_events,
                "load": load,
                "ended_at": load["ended_at"],
                "seconds_to_catch_up_after_burst_end": catch_up,
                "goal_seconds": BURST_CATCH_UP_GOAL_S,
                "ratio_to_goal": None if worst is None else round(worst / BURST_CATCH_UP_GOAL_S, 3),
            }
        freshness_step = next((s for s in results if s["target_events_per_second"] == GOAL_RATE), None)
        freshness = _freshness(st.settings, freshness_step) if freshness_step else None
        states = stack.job_states(st.settings)
        memory = timeline.samples[-1]["rss_mib"]
    _plot(timeline, results, burst, plot)
    highest = {
        job: max((s["target_events_per_second"] for s in results if s["jobs"][job]["lag_bounded"]), default=0)
        for job in JOBS
    }
    pipeline_highest = max((s["target_events_per_second"] for s in results if s["all_jobs_bounded"]), default=0)
    return {
        "steps": [{k: v for k, v in s.items() if k != "window"} for s in results],
        "highest_sustained_events_per_second": {"pipeline": pipeline_highest, **highest},
        "goal_events_per_second": GOAL_RATE,
        "ratio_to_goal": round(pipeline_highest / GOAL_RATE, 3),
        "stretch_met": pipeline_highest >= STRETCH_RATE,
        "burst": burst,
        "freshness_at_goal_rate": freshness,
        "jobs_at_end": states,
        "no_restarts": all(
            s["restarts"] == 0 and s["recoveries"] == 0 and s["state"] == "RUNNING" for s in states.values()
        ),
        "rss_mib_at_end": memory,
        "rss_mib_total_at_end": round(sum(memory.values()), 1),
        "plot": str(plot),
        "timeline": [{k: v for k, v in s.items() if k != "at"} for s in timeline.samples],
    }


def _steps(text: str) -> tuple[tuple[int, int], ...]:
    return tuple((int(rate), int(seconds)) for rate, seconds in (part.split(":") for part in text.split(",")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=_steps, default=STEPS, help="RATE:SECONDS,... (default: %(default)s)")
    parser.add_argument("--burst", type=int, default=BURST_EVENTS, help="events in the burst (0: none)")
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT)
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    stack.report(run(args.steps, args.burst, args.plot), args.json)


if __name__ == "__main__":
    main()
