"""Many workers, one spool directory, on a real Kafka broker started by the platform's own CLI: `uvicorn --workers 4`
(FastAPI) and `gunicorn -w 4 --preload` (Flask), the broker stopped for 20 s under steady traffic and one worker
killed with SIGKILL while it spools (the server starts a replacement). Every answered request's event reaches the
topic (a duplicate is allowed: the pipeline counts an event_id once), and once the broker is back each worker sends
new events straight to Kafka again; at the end the spool directory is empty (the dead worker's segments adopted)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from config.settings import REPO_ROOT
from infra import process
from tests.integration.test_interceptor_kafka import Broker, running_broker

pytestmark = pytest.mark.slow

APP = "tests.integration.interceptor_workers_app"
WORKERS = 4
OUTAGE_SECONDS = 20


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    with running_broker("itest-workers-") as b:
        yield b


def _server_command(server: str, port: int) -> list[str]:
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", f"{APP}:asgi_app", "--factory", "--workers", str(WORKERS),
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]  # fmt: skip
    return [sys.executable, "-m", "gunicorn", "-w", str(WORKERS), "--preload", "-b", f"127.0.0.1:{port}",
            "--graceful-timeout", "10", "--log-level", "warning", f"{APP}:wsgi_app()"]  # fmt: skip


@dataclass
class Traffic:
    """Steady traffic from `concurrency` clients; each request carries a unique x-request-id (the event's trace_id)."""

    base: str
    concurrency: int = 12
    pause: float = 0.02
    sent: int = 0
    failed: int = 0
    answers: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)  # (time, request id, body)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.base, timeout=10, limits=limits) as client:

            async def loop(n: int) -> None:
                i = 0
                while not self._stop.is_set():
                    request_id = uuid.uuid4().hex
                    self.sent += 1
                    try:
                        response = await client.get(f"/items/{n * 1_000_000 + i}", headers={"x-request-id": request_id})
                        if response.status_code == 200:
                            self.answers.append((time.monotonic(), request_id, response.json()))
                        else:
                            self.failed += 1
                    except httpx.HTTPError:
                        self.failed += 1  # the worker died under it: not answered, nothing is owed
                    i += 1
                    await asyncio.sleep(self.pause)

            await asyncio.gather(*(loop(n) for n in range(self.concurrency)))

    def since(self, t: float) -> list[dict[str, Any]]:
        return [body for at, _, body in list(self.answers) if at >= t]

    def last_of_each_worker(self) -> dict[int, dict[str, Any]]:
        return {body["pid"]: body for _, _, body in self.answers}


def _trace_ids_on_topic(broker: Broker, topic: str, wanted: set[str], timeout: float = 180) -> Counter[str]:
    """trace_id (else event_id) -> how many times it is on the topic; reads until every wanted id was seen."""

    def key(event: dict) -> str:
        return str(event.get("trace_id") or event["event_id"])

    events = broker.events(topic, lambda seen: wanted <= {key(e) for e in seen}, timeout)
    return Counter(key(e) for e in events)


def _wait(predicate: Any, timeout: float, what: str, details: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}" + (f": {details()}" if details else ""))


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
def test_workers_sharing_a_spool_lose_nothing_across_an_outage_and_a_sigkill(broker, server, tmp_path, capsys):
    topic = broker.new_topic()
    spool_dir = tmp_path / "spool"
    port = process.free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "ITEST_BOOTSTRAP": broker.servers,
           "ITEST_SPOOL": str(spool_dir), "ITEST_TOPIC": topic}  # fmt: skip
    log = (tmp_path / "server.log").open("w")
    # a session of its own: at the end the whole group (the server and its workers) is stopped by its id
    srv = subprocess.Popen(_server_command(server, port), cwd=REPO_ROOT, env=env, stdout=log,
                           stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    traffic = Traffic(f"http://127.0.0.1:{port}")
    killed: int | None = None
    try:
        _wait(lambda: _answers(f"http://127.0.0.1:{port}/_state"), 60, f"{server} to serve")
        traffic.start()
        time.sleep(5)
        assert traffic.answers, "no traffic"
        broker.cli("down", "kafka")
        down_at = time.monotonic()
        time.sleep(8)
        # SIGKILL the busiest worker of the last second, while it spools
        recent = Counter(body["pid"] for body in traffic.since(time.monotonic() - 1))
        assert recent, "no answers while the broker is down"
        killed = recent.most_common(1)[0][0]
        spooled_before_kill = max(b["spooled"] for b in traffic.since(down_at) if b["pid"] == killed)
        os.kill(killed, signal.SIGKILL)
        time.sleep(max(0.0, down_at + OUTAGE_SECONDS - time.monotonic()))
        broker.cli("up", "kafka")
        up_at = time.monotonic()
        outage = up_at - down_at

        # every worker answering now routes straight to Kafka again (broker known up, nothing of its own spooled)
        def recovered() -> bool:
            bodies = traffic.since(time.monotonic() - 2)
            return bool(bodies) and all(not b["broker_down"] and not b["holding"] for b in bodies)

        def stuck() -> str:
            return f"{traffic.since(time.monotonic() - 2)[-8:]}; spool: {sorted(os.listdir(spool_dir))}"

        _wait(recovered, 120, "every worker to send straight to Kafka again", stuck)
        recovered_at = time.monotonic()
        time.sleep(8)
        window = traffic.since(recovered_at)
        traffic.stop()
        by_pid: dict[int, list[dict[str, Any]]] = {}
        for body in window:
            by_pid.setdefault(body["pid"], []).append(body)
        assert killed not in by_pid and len(by_pid) >= 2, by_pid.keys()
        window_spooled = sum(b[-1]["spooled"] - b[0]["spooled"] for b in by_pid.values())
        window_produced = sum(b[-1]["produced"] - b[0]["produced"] for b in by_pid.values())
        for pid, bodies in by_pid.items():  # nothing more went to the spool, everything to Kafka directly
            assert bodies[-1]["spooled"] == bodies[0]["spooled"], (pid, bodies[0], bodies[-1])
            assert bodies[-1]["produced"] > bodies[0]["produced"] or len(bodies) < 3, (pid, bodies[0], bodies[-1])
        # the spool empties: every segment replayed, the dead worker's adopted by the living
        _wait(lambda: not list(spool_dir.glob("*.spool")), 120, f"the spool to empty: {os.listdir(spool_dir)}")
        answered = {request_id for _, request_id, _ in traffic.answers}
        on_topic = _trace_ids_on_topic(broker, topic, answered)
        lost = answered - on_topic.keys()
        duplicates = sum(n - 1 for trace_id, n in on_topic.items() if trace_id in answered and n > 1)
        last = traffic.last_of_each_worker()  # a worker's counters only grow: its last answer has the most
        spooled, dropped = sum(b["spooled"] for b in last.values()), sum(b["dropped"] for b in last.values())
        with capsys.disabled():
            print(
                f"\n[{server} x{WORKERS}] sent={traffic.sent} answered={len(answered)} "
                f"on_topic={len(answered & on_topic.keys())} duplicates={duplicates} lost={len(lost)} "
                f"failed_requests={traffic.failed} spooled={spooled} dropped={dropped} | broker away {outage:.1f}s "
                f"(stopped {OUTAGE_SECONDS}s + start), SIGKILLed worker {killed} had spooled {spooled_before_kill}, "
                f"workers seen {len(last)} | all direct {recovered_at - up_at:.1f}s after the broker was back; "
                f"then {len(window)} requests in 8 s: spooled +{window_spooled}, produced +{window_produced}"
            )
        assert spooled_before_kill > 0 and spooled > 0, "the outage must have made the workers spool"
        assert not lost, f"{len(lost)} answered requests never reached the topic, e.g. {sorted(lost)[:5]}"
        assert dropped == 0
        if server == "gunicorn":  # preloaded: each worker dropped the master's producer and made its own
            assert {b["inherited"] for b in window} == {1}
            assert any(k.startswith("startup-") for k in on_topic), "the master's start-up event"
    finally:
        traffic.stop()
        _stop_group(srv)
        log.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _stop_group(srv: subprocess.Popen[bytes]) -> None:
    """Stop the server and its workers: SIGTERM to its process group, SIGKILL what is left after 30 s."""
    try:
        os.killpg(srv.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        srv.wait(30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.killpg(srv.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(srv.pid, signal.SIGKILL)
    if srv.poll() is None:
        srv.wait(10)
