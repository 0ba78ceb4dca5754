"""Interceptor benchmark (issue 4), one run, measured side by side, JSON out:

- HTTP: the same FastAPI app under uvicorn with and without the middleware, loaded by `wrk` from a second
  process (server pinned to CPU 0, wrk to CPU 1). Throughput with 32 connections; latency with one connection
  (service time, no queueing): added p50/p99 = with - without. Goals: requests/s ratio >= 0.90, p99 <= 2 ms.
  Two endpoints: `/products` (a page of a catalogue, what a shop's endpoint does) and `/items/{id}` (the
  smallest endpoint there is, where the interceptor's fixed cost per request shows at its largest).
- Producer: events/s of `send_message_to_kafka` from one process into the local broker against a bare
  confluent-kafka `produce` loop with the same settings and payloads. Goals: ratio >= 0.8, >= 50,000 events/s.

Kafka comes from the platform's own CLI in a sandbox (free ports, its own var/). `wrk` is Debian's package
(installed with apt-get when missing and running as root).

    python -m bench.interceptor
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
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
        values = sorted(r[key] for r in runs[side])
        return values[len(values) // 2]

    rps_ratio = median("with", "rps") / median("without", "rps")
    added_p50 = median("with", "p50_ms") - median("without", "p50_ms")
    added_p99 = median("with", "p99_ms") - median("without", "p99_ms")
    return {
        "endpoint": path,
        "rounds": ROUNDS,
        "seconds_per_run": DURATION_S,
        "added_cpu_us_per_request": round(1e6 / median("with", "rps") - 1e6 / median("without", "rps"), 1),
        "rps_without": round(median("without", "rps")),
        "rps_with": round(median("with", "rps")),
        "rps_ratio": round(rps_ratio, 3),
        "rps_ratio_goal": 0.90,
        "latency_ms_without": {"p50": median("without", "p50_ms"), "p99": median("without", "p99_ms")},
        "latency_ms_with": {"p50": median("with", "p50_ms"), "p99": median("with", "p99_ms")},
        "added_latency_ms": {"p50": round(added_p50, 3), "p99": round(added_p99, 3)},
        "added_p99_goal_ms": 2.0,
        "non_2xx": sum(r["non_2xx"] for side in runs.values() for r in side),
        "runs": runs,
    }


def producer_throughput(kafka: str, events: int = 300_000) -> dict[str, Any]:
    from confluent_kafka import Producer

    from interceptor.producer import DEFAULT_CONFIG, EventProducer

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
        # as deployed: with a spool, so a burst beyond librdkafka's queue goes to disk instead of blocking the
        # caller, and the clock runs until every event is delivered (spooled ones replayed)
        spool = tempfile.mkdtemp(prefix="bench-spool-")
        producer = EventProducer({"bootstrap.servers": kafka}, spool_dir=spool, replay_interval=0.05)
        try:
            started = time.perf_counter()
            for i in range(events):
                producer.send(topic, payload, key=str(i % 100).encode())
            while producer.stats().get("delivered", 0) + producer.stats().get("replayed", 0) < events:
                if time.perf_counter() - started > 300:
                    raise RuntimeError(f"events not delivered: {producer.stats()}")
                time.sleep(0.01)
            elapsed = time.perf_counter() - started
            spilled.append(producer.stats().get("spooled", 0))
        finally:
            producer.close(5)
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
    for _ in range(ROUNDS):
        for side, fn in (("bare", bare), ("ours", ours)):
            results[side].append(fn(new_topic()))
    bare_eps = sorted(results["bare"])[ROUNDS // 2]
    ours_eps = sorted(results["ours"])[ROUNDS // 2]
    return {
        "events_per_run": events,
        "bare_confluent_events_per_s": round(bare_eps),
        "send_message_to_kafka_events_per_s": round(ours_eps),
        "ratio": round(ours_eps / bare_eps, 3),
        "ratio_goal": 0.8,
        "events_per_s_goal": 50_000,
        "events_spooled_per_run": spilled,
        "runs": {k: [round(v) for v in vs] for k, vs in results.items()},
    }


def run() -> dict[str, Any]:
    var_dir = sandbox.scratch_var_dir("bench-interceptor-")
    env = sandbox.environment(var_dir, PIPELINE_KAFKA__PARTITIONS="3")
    cli = [sys.executable, "-m", "infra"]
    subprocess.run([*cli, "up", "kafka"], cwd=REPO_ROOT, env=env, check=True, capture_output=True)
    kafka = f"127.0.0.1:{env['PIPELINE_KAFKA__PORT']}"
    try:
        return {
            "http_shop_endpoint": http_overhead(kafka, "http_events", str(var_dir / "spool"), "/products?page=2"),
            "http_smallest_endpoint": http_overhead(kafka, "http_events", str(var_dir / "spool"), "/items/42"),
            "producer": producer_throughput(kafka),
        }
    finally:
        subprocess.run([*cli, "down", "kafka"], cwd=REPO_ROOT, env=env, capture_output=True)
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
