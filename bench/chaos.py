"""Chaos on the stack: SIGKILL one process at a time (the TaskManager, the JobManager, the Kafka broker, the
catalog's PostgreSQL, the Dagster daemon, the code server; then the TaskManager and the broker together) under
steady traffic of known events, with nobody running `make up` or a Dagster run: the supervisor brings each one
back, and the tables must hold exactly the known events.

Per kill: how long until every killed process runs again (the supervisor's restart, health-gated), until the
streaming job is RUNNING, and until the first event sent after the kill is committed in `raw.http_events`
(goals: TaskManager 60 s, JobManager 120 s, broker 60 s). At the end: events lost and duplicated in
`raw.http_events` (goal 0 each); per minute window (`speed.api_requests_per_minute`, and the DataStream
`speed.requests_per_route_minute`) every event sent either counted or recorded late for it in `raw.late_events`,
once (`counted_nowhere`, `counted_twice`: goal 0 each; whether an event delayed by a kill is late is the
watermark's to say, so the sum is what is exact); dead letters against the malformed messages sent; the
supervisor's restart count per process and its resident memory.

    python -m bench.chaos [--rate 100] [--targets taskmanager,jobmanager,...] [--json PATH]

The traffic: events of one service of its own at `--rate` per second, each with a unique id; every 25th sent
twice (a second delivery the job must drop), every 100th malformed (a dead letter), every 150th two hours old
(late for every window). The demo's own traffic keeps running beside it. tests/integration/test_chaos.py runs
the same scenarios with assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench import known_events, stack
from config.settings import Settings
from event_log.topic import client_config
from infra import flink_deploy, supervision
from lakehouse import iceberg

JOB = "streaming"
# what each scenario kills, by the names of the stack's processes (var/run/<name>.pid)
TARGETS: dict[str, tuple[str, ...]] = {
    "taskmanager": ("flink-taskmanager",),
    "jobmanager": ("flink-jobmanager",),
    "broker": ("kafka",),
    "postgres": ("postgres",),
    "dagster-daemon": ("dagster-daemon",),
    "code-server": ("dagster-code-server",),
    "taskmanager+broker": ("flink-taskmanager", "kafka"),
}
GOALS_S = {"taskmanager": 60.0, "jobmanager": 120.0, "broker": 60.0}
RATE = 100
DUPLICATE_EVERY, MALFORMED_EVERY, LATE_EVERY = 25, 100, 150
LATE_BY = timedelta(hours=2)
# the windows that cannot count a late event on the route the traffic uses (the funnel's routes differ)
LATE_WINDOWS = (("streaming", "sql_windows"), ("streaming", "requests_per_route_minute"))


@dataclass
class Traffic:
    """Known events onto the topic at a steady rate from a thread; each delivery confirmed by the broker (the
    producer holds them while the broker is away: its messages time out after 10 minutes, never sooner)."""

    settings: Settings
    rate: float
    service: str = field(default_factory=lambda: f"chaos-{uuid.uuid4().hex[:8]}")
    valid: list[dict[str, Any]] = field(default_factory=list)
    sent_at: dict[str, float] = field(default_factory=dict)
    malformed: int = 0
    late: int = 0
    duplicates: int = 0
    failed: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chaos-traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(660)

    def first_sent_after(self, moment: float) -> dict[str, Any] | None:
        """The first valid event sent after `moment` (seconds since the epoch)."""
        return next((e for e in list(self.valid) if self.sent_at[e["event_id"]] > moment), None)

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failed.append(str(err))

    def _run(self) -> None:
        config = {**client_config(self.settings), "enable.idempotence": True, "message.timeout.ms": 600_000}
        producer = Producer(config)
        topic, i, started = self.settings.kafka.topic, 0, time.monotonic()
        while not self._stop.is_set():
            due = started + i / self.rate
            if (wait := due - time.monotonic()) > 0:
                self._stop.wait(wait)
                continue
            now = datetime.now(UTC)
            if i % MALFORMED_EVERY == MALFORMED_EVERY - 1:
                producer.produce(topic, f"{self.service} #{i}: not an event".encode(), on_delivery=self._delivered)
                self.malformed += 1
            else:
                late = i % LATE_EVERY == LATE_EVERY - 1
                event = known_events.event(self.service, i, now - LATE_BY if late else now)
                payload = json.dumps(event).encode()
                producer.produce(topic, payload, key=str(event["user_id"]), on_delivery=self._delivered)
                if i % DUPLICATE_EVERY == DUPLICATE_EVERY - 1:  # the same event delivered twice
                    producer.produce(topic, payload, key=str(event["user_id"]), on_delivery=self._delivered)
                    self.duplicates += 1
                self.late += late
                self.valid.append(event)
                self.sent_at[str(event["event_id"])] = time.time()
            producer.poll(0)
            i += 1
        remaining = producer.flush(600)
        if remaining:
            self.failed.append(f"{remaining} messages not delivered")

    # ---- what the tables must hold ----
    def sent_per_minute(self) -> dict[tuple[datetime, int], int]:
        """(minute of event time, status) -> valid events sent (each once, whatever their lateness)."""
        sent: dict[tuple[datetime, int], int] = {}
        for e in self.valid:
            at = datetime.strptime(e["event_time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            key = (at.replace(second=0, microsecond=0), int(e["status_code"]))
            sent[key] = sent.get(key, 0) + 1
        return sent


def _pids(settings: Settings) -> dict[str, int]:
    return stack.service_pids(settings.var_dir)


def _committed(settings: Settings, event_id: str) -> bool:
    table = iceberg.load(settings).load_table("raw.http_events")
    return table.scan(row_filter=f"event_id == '{event_id}'", selected_fields=("event_id",)).count() > 0


def _job_running(settings: Settings) -> bool:
    found = flink_deploy.find_job(settings, JOB)
    return bool(found and found["state"] == "RUNNING")


def _poll(check: Callable[[], bool], timeout: float, interval: float = 0.5, since: float | None = None) -> float | None:
    """Seconds from `since` (default: now) until `check` held; None when it did not within `timeout` from now.
    An exception counts as not yet."""
    started = time.monotonic()
    origin = started if since is None else since
    while time.monotonic() - started < timeout:
        try:
            if check():
                return round(time.monotonic() - origin, 1)
        except Exception:
            pass
        time.sleep(interval)
    return None


def kill_and_recover(
    settings: Settings,
    traffic: Traffic,
    target: str,
    timeout: float = 300,
    while_down: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """SIGKILL the target's processes; how long until each runs again (the supervisor's record: running, a new
    PID), the job is RUNNING, and the first event sent after the kill is in raw.http_events. `while_down` runs
    right after the kill."""
    names = TARGETS[target]
    before = _pids(settings)
    restarts_before = {n: _restarts(settings, n) for n in names}
    killed_at, killed_wall = time.monotonic(), time.time()
    for name in names:
        os.kill(before[name], signal.SIGKILL)
    if while_down is not None:
        while_down()

    def back() -> bool:
        now = _pids(settings)
        state = supervision.read_state(settings).get("services", {})
        return all(
            now.get(n) not in (None, before[n]) and state.get(n, {}).get("state") == supervision.RUNNING for n in names
        )

    services_back = _poll(back, timeout, since=killed_at)
    job_running = _poll(lambda: _job_running(settings), timeout, since=killed_at)
    probe = None
    while probe is None and time.monotonic() - killed_at < timeout:
        probe = traffic.first_sent_after(killed_wall)
        time.sleep(0.2)
    committed = None
    if probe is not None:
        committed = _poll(lambda: _committed(settings, probe["event_id"]), timeout, interval=1.0, since=killed_at)
    result: dict[str, Any] = {
        "target": target,
        "killed": {n: before[n] for n in names},
        "services_back_s": services_back,
        "job_running_s": job_running,
        "first_event_committed_s": committed,
        "restarts": {n: _restarts(settings, n) - restarts_before[n] for n in names},
    }
    goal = GOALS_S.get(target)
    if goal is not None:
        result["goal_s"] = goal
        result["ratio_to_goal"] = round(committed / goal, 2) if committed is not None else None
    return result


def _restarts(settings: Settings, name: str) -> int:
    return int(supervision.read_state(settings).get("services", {}).get(name, {}).get("restarts", 0))


def _accounting(
    sent: dict[tuple[datetime, int], int],
    counted: dict[tuple[datetime, int], int],
    late: dict[tuple[datetime, int], int],
) -> dict[str, Any]:
    """Per (minute, status): every event sent is counted in its window or recorded late for it, once. Events
    counted nowhere are `missing`, more than sent are `extra`; each with the first few minutes where it happens."""
    missing, extra = 0, 0
    where: list[str] = []
    for key in sorted(set(sent) | set(counted) | set(late)):
        held = counted.get(key, 0) + late.get(key, 0)
        if held != sent.get(key, 0):
            missing += max(0, sent.get(key, 0) - held)
            extra += max(0, held - sent.get(key, 0))
            if len(where) < 10:
                where.append(f"{key[0]:%H:%M} {key[1]}: sent {sent.get(key, 0)}, counted {counted.get(key, 0)}, "
                             f"late {late.get(key, 0)}")  # fmt: skip
    last = max(sent)[0] if sent else None
    last_minute = [key for key in sent if key[0] == last]
    closed = all(counted.get(k, 0) + late.get(k, 0) >= sent[k] for k in last_minute)
    return {"exact": missing == 0 and extra == 0, "missing": missing, "extra": extra, "where": where,
            "counted": sum(counted.values()), "late": sum(late.values()), "last_minute_closed": closed}  # fmt: skip


def counts(settings: Settings, traffic: Traffic) -> dict[str, Any]:
    """What the tables hold of the traffic against what was sent: raw.http_events by event id; per window kind
    (the SQL minute window, the DataStream route minute) each event counted or recorded late exactly once."""
    catalog = iceberg.load(settings)
    service = traffic.service
    raw = catalog.load_table("raw.http_events").scan(
        row_filter=f"service == '{service}'", selected_fields=("event_id",)
    )
    ids = [r["event_id"] for r in raw.to_arrow().to_pylist()]
    sent_ids = {e["event_id"] for e in traffic.valid}
    held = set(ids)

    def rows(identifier: str, fields: tuple[str, ...]) -> list[dict[str, Any]]:
        table = catalog.load_table(identifier)
        return list(table.scan(row_filter=f"service == '{service}'", selected_fields=fields).to_arrow().to_pylist())

    minute: dict[tuple[datetime, int], int] = {}
    for r in rows("speed.api_requests_per_minute", ("window_start", "status_code", "request_count")):
        key = (r["window_start"], r["status_code"])
        minute[key] = minute.get(key, 0) + r["request_count"]
    late: dict[str, dict[tuple[datetime, int], int]] = {window: {} for _, window in LATE_WINDOWS}
    for r in rows("raw.late_events", ("window_name", "window_start", "status_code")):
        per = late.setdefault(r["window_name"], {})
        key = (r["window_start"], r["status_code"])
        per[key] = per.get(key, 0) + 1
    sent = traffic.sent_per_minute()
    # the route minute (one route here): its statuses are not kept, so per minute only
    route: dict[tuple[datetime, int], int] = {}
    for r in rows("speed.requests_per_route_minute_firings", ("window_start", "request_count")):
        # a re-firing's row holds the window's count so far: the latest (largest) is the window's
        route[(r["window_start"], 0)] = max(route.get((r["window_start"], 0), 0), r["request_count"])
    sent_by_minute: dict[tuple[datetime, int], int] = {}
    for (at, _), n in sent.items():
        sent_by_minute[(at, 0)] = sent_by_minute.get((at, 0), 0) + n
    late_by_minute: dict[tuple[datetime, int], int] = {}
    for (at, _), n in late.get("requests_per_route_minute", {}).items():
        late_by_minute[(at, 0)] = late_by_minute.get((at, 0), 0) + n
    dead = (
        catalog.load_table("raw.dead_letter_events")
        .scan(row_filter=f"payload LIKE '{service} #%'", selected_fields=("payload",))
        .count()
    )
    return {
        "sent_valid": len(sent_ids),
        "sent_twice": traffic.duplicates,
        "sent_late": traffic.late,
        "raw_rows": len(ids),
        "raw_lost": len(sent_ids - held),
        "raw_duplicated": len(ids) - len(held),
        "raw_unknown": len(held - sent_ids),
        "minute_window": _accounting(sent, minute, late.get("sql_windows", {})),
        "route_minute_window": _accounting(sent_by_minute, route, late_by_minute),
        "malformed_sent": traffic.malformed,
        "dead_letters": dead,
        "producer_failures": traffic.failed[:5],
    }


def settle(settings: Settings, traffic: Traffic, timeout: float = 300) -> dict[str, Any]:
    """Wait until the tables hold every known event (the windows closed by the demo traffic's watermark)."""
    last: dict[str, Any] = {}

    def exact() -> bool:
        nonlocal last
        last = counts(settings, traffic)
        windows = [last["minute_window"], last["route_minute_window"]]
        # every window exact, or at least the last minute sent closed in both (what misses is then missing for good)
        closed = all(w["exact"] or w["last_minute_closed"] for w in windows)
        complete = last["raw_rows"] == last["sent_valid"] and last["dead_letters"] == last["malformed_sent"]
        return bool(complete and closed)

    _poll(exact, timeout, interval=5.0)
    time.sleep(10)  # a few more checkpoints: nothing may arrive twice
    return counts(settings, traffic)


def supervisor_memory(settings: Settings) -> float:
    return stack.service_usage(settings.var_dir).get(supervision.NAME, {}).get("rss_mib", 0.0)


def run(targets: list[str], rate: float, pause: float = 20.0) -> dict[str, Any]:
    with stack.sandboxed("chaos-", PIPELINE_FLINK__CHECKPOINT_INTERVAL_SECONDS="2") as st:
        settings = st.settings
        traffic = Traffic(settings, rate)
        traffic.start()
        try:
            time.sleep(pause)
            scenarios = []
            for target in targets:
                scenario = kill_and_recover(settings, traffic, target)
                scenarios.append(scenario)
                print(json.dumps(scenario), flush=True)
                time.sleep(pause)
        finally:
            traffic.stop()
        final = settle(settings, traffic)
        state = supervision.read_state(settings).get("services", {})
        return {
            "rate": rate,
            "scenarios": scenarios,
            "counts": final,
            "lost": final["raw_lost"],
            "duplicated": final["raw_duplicated"],
            "counted_nowhere": final["minute_window"]["missing"],
            "counted_twice": final["minute_window"]["extra"],
            "supervisor_rss_mib": supervisor_memory(settings),
            "restarts": {name: entry.get("restarts", 0) for name, entry in state.items()},
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=RATE, help="known events per second")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"any of {', '.join(TARGETS)}")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    targets = [t for t in args.targets.split(",") if t]
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; allowed: {', '.join(TARGETS)}")
    stack.report(run(targets, args.rate), args.json)


if __name__ == "__main__":
    main()
