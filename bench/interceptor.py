"""Interceptor benchmark (issue 4), one run, measured side by side, JSON out:

- HTTP: the same FastAPI app under uvicorn with and without the middleware, loaded by `wrk` from a second
  process (server pinned to CPU 0, and with it librdkafka's threads; wrk to CPU 1, and the broker too: it stands
  for a Kafka cluster on other machines, its work is no cost of the app's). Throughput with 32
  connections; latency with one connection (service time, no queueing): added p50/p99 = with - without. Goals:
  requests/s ratio >= 0.90, added p99 <= 2 ms. Two endpoints: `/products` (a page of a catalogue, what a shop's
  endpoint does) and `/items/{id}` (the smallest endpoint there is, where the interceptor's fixed cost per request
  shows at its largest). The rounds are interleaved (without, with, without, with, ...), so drift hits both sides
  alike; the headline figures are medians over the rounds, and each round's own ratio (its two runs next to each
  other in time) is given as min / median / max: the spread.
- Producer: events/s of `send_message_to_kafka` (the process-wide producer, with a spool, as deployed) from one
  process into the local broker against a bare confluent-kafka `produce` loop with the same settings, payloads and
  keys; both clocks stop when every event is delivered. Goals: ratio >= 0.8, >= 50,000 events/s.

Kafka comes from the platform's own CLI in a sandbox (free ports, its own var/). `wrk` is Debian's package
(installed with apt-get when missing and running as root). The output says what was measured (versions, CPUs)
and the machine's load average before and after: the ratios mean something on an otherwise quiet machine only.

    python -m bench.interceptor [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx

from config.settings import REPO_ROOT
from infra import process, sandbox

ROUNDS = 5
DURATION_S = 6


def _ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
        return "wrk"
    raise SystemExit("bench needs wrk (Debian package `wrk`)")


def _wrk(wrk: str, url: str, connections: int, seconds: int = DURATION_S) -> dict[str, float]:
    out = subprocess.run(
        ["taskset", "-c", "1", wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {p: _ms(re.search(rf"^\s+{p}%\s+(\S+)", out, re.M).group(1)) for p in ("50", "99")}  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50_ms": lat["50"], "p99_ms": lat["99"], "non_2xx": float(errors.group(1)) if errors else 0}


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _spread(values: list[float], digits: int = 3) -> dict[str, float]:
    return {
        "min": round(min(values), digits),
        "median": round(_median(values), digits),
        "max": round(max(values), digits),
    }


def _serve(with_middleware: bool, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "uvicorn", "bench.interceptor_app:app", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=REPO_ROOT, env={**env, "BENCH_MIDDLEWARE": "1" if with_middleware else "0"},
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/items/1", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the benchmark app did not start")


def http_overhead(kafka: str, topic: str, spool: str, path: str) -> dict[str, Any]:
    wrk = _ensure_wrk()
    env = {**os.environ, "BENCH_KAFKA": kafka, "BENCH_TOPIC": topic, "BENCH_SPOOL": spool}
    runs: dict[str, list[dict[str, float]]] = {"without": [], "with": []}
    for _ in range(ROUNDS):  # interleaved, so drift hits both sides alike
        for side in ("without", "with"):
            port = process.free_port()
            server = _serve(side == "with", env, port)
            try:
                url = f"http://127.0.0.1:{port}{path}"
                _wrk(wrk, url, 8, seconds=2)  # warm-up
                throughput = _wrk(wrk, url, 32)
                latency = _wrk(wrk, url, 1)
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(30)
            runs[side].append({"rps": throughput["rps"], "p50_ms": latency["p50_ms"], "p99_ms": latency["p99_ms"],
                               "non_2xx": throughput["non_2xx"] + latency["non_2xx"]})  # fmt: skip

    def median(side: str, key: str) -> float:
        return _median([r[key] for r in runs[side]])

    def per_round(key: str, combine: Callable[[float, float], float]) -> list[float]:
        return [combine(w[key], wo[key]) for w, wo in zip(runs["with"], runs["without"], strict=True)]

    rps_ratio = median("with", "rps") / median("without", "rps")
    added_p50 = median("with", "p50_ms") - median("without", "p50_ms")
    added_p99 = median("with", "p99_ms") - median("without", "p99_ms")
    return {
        "endpoint": path,
        "rounds": ROUNDS,
        "seconds_per_run": DURATION_S,
        # the server's core is saturated: 1/rps is its time per request
        "added_cpu_us_per_request": round(1e6 / median("with", "rps") - 1e6 / median("without", "rps"), 1),
        "rps_without": round(median("without", "rps")),
        "rps_with": round(median("with", "rps")),
        "rps_ratio": round(rps_ratio, 3),
        "rps_ratio_goal": 0.90,
        "rps_ratio_per_round": _spread(per_round("rps", lambda w, wo: w / wo)),
        "latency_ms_without": {"p50": median("without", "p50_ms"), "p99": median("without", "p99_ms")},
        "latency_ms_with": {"p50": median("with", "p50_ms"), "p99": median("with", "p99_ms")},
        "added_latency_ms": {"p50": round(added_p50, 3), "p99": round(added_p99, 3)},
        "added_p99_ms_per_round": _spread(per_round("p99_ms", lambda w, wo: w - wo)),
        "added_p99_goal_ms": 2.0,
        "non_2xx": sum(r["non_2xx"] for side in runs.values() for r in side),
        "runs": runs,
    }


def producer_throughput(kafka: str, events: int = 300_000) -> dict[str, Any]:
    from confluent_kafka import Producer

    from interceptor.producer import (
        DEFAULT_CONFIG,
        configure_producer,
        get_producer,
        send_message_to_kafka,
        shutdown_producer,
    )

    sample = {
        "event_id": uuid.uuid4().hex, "event_time": "2026-11-25T10:00:00.000Z", "service": "bench",
        "method": "GET", "route": "/items/{item_id}", "path": "/items/42", "status_code": 200, "duration_ms": 1.25,
        "user_id": "u1", "client_address": "127.0.0.1", "user_agent": "wrk", "referer": None, "trace_id": None,
        "request_bytes": None, "response_bytes": 48, "schema_version": 1,
    }  # fmt: skip
    payload = json.dumps(sample).encode()
    config = {**DEFAULT_CONFIG, "bootstrap.servers": kafka}

    def bare(topic: str) -> float:
        producer = Producer(config)
        started = time.perf_counter()
        for i in range(events):
            while True:
                try:
                    producer.produce(topic, payload, key=str(i % 100).encode())
                    break
                except BufferError:
                    producer.poll(0.01)
            if i % 1000 == 0:
                producer.poll(0)
        producer.flush(60)
        return events / (time.perf_counter() - started)

    def ours(topic: str) -> float:
        # as deployed: the process-wide producer with a spool, so a burst beyond librdkafka's queue goes to disk
        # instead of blocking the caller. Made before the clock starts (as `kafka_lifespan` does at start-up, and
        # as the bare loop's Producer is); the clock runs until every event is delivered (spooled ones replayed).
        spool = tempfile.mkdtemp(prefix="bench-spool-")
        configure_producer({"bootstrap.servers": kafka}, spool_dir=spool)
        producer = get_producer()
        try:
            started = time.perf_counter()
            for i in range(events):
                send_message_to_kafka(topic, payload, str(i % 100))
            producer.flush(60)
            while producer.stats().get("delivered", 0) + producer.stats().get("replayed", 0) < events:
                if time.perf_counter() - started > 300:
                    raise RuntimeError(f"events not delivered: {producer.stats()}")
                time.sleep(0.01)
            elapsed = time.perf_counter() - started
            spilled.append(producer.stats().get("spooled", 0))
        finally:
            shutdown_producer(5)
            shutil.rmtree(spool, ignore_errors=True)
        return events / elapsed

    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka})

    def new_topic() -> str:
        name = f"bench-{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(name, 3, 1)])[name].result(timeout=30)
        return name

    spilled: list[int] = []
    results: dict[str, list[float]] = {"bare": [], "ours": []}
    for _ in range(ROUNDS):  # interleaved, as the HTTP runs
        for side, fn in (("bare", bare), ("ours", ours)):
            results[side].append(fn(new_topic()))
    bare_eps = _median(results["bare"])
    ours_eps = _median(results["ours"])
    return {
        "events_per_run": events,
        "bare_confluent_events_per_s": round(bare_eps),
        "send_message_to_kafka_events_per_s": round(ours_eps),
        "ratio": round(ours_eps / bare_eps, 3),
        "ratio_per_round": _spread([o / b for o, b in zip(results["ours"], results["bare"], strict=True)]),
        "ratio_goal": 0.8,
        "events_per_s_goal": 50_000,
        "events_spooled_per_run": spilled,
        "runs": {k: [round(v) for v in vs] for k, vs in results.items()},
    }


def _measured() -> dict[str, Any]:
    """What was measured, and on what."""
    from interceptor.producer import DEFAULT_CONFIG

    packages = ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "confluent-kafka", "orjson")
    return {
        "python": platform.python_version(),
        "packages": {name: version(name) for name in packages},
        "librdkafka": __import__("confluent_kafka").libversion()[0],
        "producer_config": {k: v for k, v in DEFAULT_CONFIG.items() if k != "bootstrap.servers"},
        "cpus": os.cpu_count(),
        "pinning": "the server (and librdkafka's threads) on CPU 0; wrk and the broker on CPU 1",
    }


def _pin_broker(var_dir: Path) -> bool:
    """The broker's JVM, all its threads, on CPU 1 (beside wrk, which uses a sixth of it)."""
    try:
        pid = int(json.loads((var_dir / "run" / "kafka.pid").read_text())["pid"])
        subprocess.run(["taskset", "-a", "-p", "-c", "1", str(pid)], check=True, capture_output=True)
    except (OSError, ValueError, KeyError, subprocess.CalledProcessError):
        return False
    return True


def run() -> dict[str, Any]:
    load_before = os.getloadavg()
    var_dir = sandbox.scratch_var_dir("bench-interceptor-")
    env = sandbox.environment(var_dir, PIPELINE_KAFKA__PARTITIONS="3")
    cli = [sys.executable, "-m", "infra"]
    subprocess.run([*cli, "up", "kafka"], cwd=REPO_ROOT, env=env, check=True, capture_output=True)
    kafka = f"127.0.0.1:{env['PIPELINE_KAFKA__PORT']}"
    try:
        return {
            "measured": {**_measured(), "broker_on_cpu_1": _pin_broker(var_dir)},
            "http_shop_endpoint": http_overhead(kafka, "http_events", str(var_dir / "spool"), "/products?page=2"),
            "http_smallest_endpoint": http_overhead(kafka, "http_events", str(var_dir / "spool"), "/items/42"),
            "producer": producer_throughput(kafka),
            # 1, 5 and 15 minutes, before and after; the benchmark itself makes ~1 (server and wrk)
            "load_average": {
                "before": [round(v, 2) for v in load_before],
                "after": [round(v, 2) for v in os.getloadavg()],
            },
        }
    finally:
        subprocess.run([*cli, "down", "kafka"], cwd=REPO_ROOT, env=env, capture_output=True)
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.interceptor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds per measurement")
    ROUNDS = parser.parse_args().rounds
    print(json.dumps(run(), indent=2))
