"""Traffic generator for the demo shop: shoppers with sessions, think times and a checkout funnel that some
finish and some abandon, plus error bursts and peaks. Run: `python -m demo.traffic` (rate from
`traffic.rate`, requests per second on average).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import signal
import time
import uuid
from dataclasses import dataclass

import httpx

log = logging.getLogger("demo.traffic")

USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
    "curl/8.5.0",
]


@dataclass
class Budget:
    """A token bucket shared by all shoppers: the average request rate, with a daily-style wave on top."""

    rate: float
    tokens: float = 0.0
    last: float = 0.0

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            # +-30 % wave with a period of 10 minutes: peaks and quiet spells
            current = self.rate * (1 + 0.3 * math.sin(now / 600 * 2 * math.pi))
            self.tokens = min(self.tokens + (now - self.last) * current, max(current, 1.0))
            self.last = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep(1 / max(current, 1.0))


async def shopper(client: httpx.AsyncClient, budget: Budget, rng: random.Random, stats: dict[str, int]) -> None:
    """One visit: land, browse and search, maybe add to cart, maybe check out and pay."""
    user_id = f"u{rng.randrange(1, 5000)}" if rng.random() < 0.7 else None
    headers = {"user-agent": rng.choice(USER_AGENTS)}
    if user_id:
        headers["x-user-id"] = user_id

    async def hit(method: str, url: str, **kwargs: object) -> int:
        await budget.take()
        try:
            response = await client.request(method, url, headers=headers, **kwargs)  # type: ignore[arg-type]
            stats[str(response.status_code)[0] + "xx"] = stats.get(str(response.status_code)[0] + "xx", 0) + 1
            return response.status_code
        except httpx.HTTPError:
            stats["transport_errors"] = stats.get("transport_errors", 0) + 1
            return 0

    async def think() -> None:
        await asyncio.sleep(rng.expovariate(1 / 0.5))

    await hit("GET", "/")
    for _ in range(rng.randint(1, 5)):
        await think()
        choice = rng.random()
        if choice < 0.4:
            await hit("GET", "/products", params={"page": rng.randint(1, 10)})
        elif choice < 0.7:
            await hit("GET", f"/products/{rng.randint(1, 210)}")  # a few ids do not exist: 404s
        elif choice < 0.9:
            await hit("GET", "/search", params={"q": f"product-{rng.randint(1, 99)}"})
        else:
            await hit("GET", "/slow")
    if rng.random() < 0.05:
        for _ in range(rng.randint(3, 10)):  # an error burst
            await hit("GET", "/errors/boom")
    if user_id is None or rng.random() < 0.5:
        return  # abandoned before the funnel
    await hit("POST", "/login", json={"username": user_id, "password": "wrong" if rng.random() < 0.1 else "pw"})
    await think()
    await hit("POST", "/cart/items", json={"product_id": rng.randint(1, 200), "quantity": rng.randint(1, 3)})
    if rng.random() < 0.4:
        return  # abandoned cart
    await think()
    await hit("GET", "/cart")
    if await hit("POST", "/checkout") != 200 or rng.random() < 0.2:
        return
    await think()
    await hit("POST", "/payments", json={"order_id": f"o-{rng.getrandbits(32):x}", "amount": 42.0})


async def run(base_url: str, rate: float, *, seed: int | None = None, duration: float | None = None) -> dict[str, int]:
    rng = random.Random(seed)
    budget = Budget(rate=rate, last=time.monotonic())
    stats: dict[str, int] = {}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    concurrency = max(4, min(200, int(rate * 2)))
    deadline = time.monotonic() + duration if duration else None
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:

        async def worker() -> None:
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                await shopper(client, budget, rng, stats)

        async def report() -> None:
            while not stop.is_set():
                await asyncio.sleep(30)
                log.info("traffic %s", " ".join(f"{k}={v}" for k, v in sorted(stats.items())))

        reporter = asyncio.create_task(report())
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        reporter.cancel()
    return stats


MALFORMED = [
    b"{not json",
    b'"a bare string"',
    b"[1, 2, 3]",
    b"",
    b'{"event_id": "", "event_time": "2026-01-01T00:00:00.000Z"}',
    b'{"event_id": "m-1", "event_time": "yesterday", "service": "s", "method": "GET", "route": "/", "path": "/",'
    b' "status_code": 200, "duration_ms": 1}',
    b'{"event_id": "m-2", "event_time": "2026-01-01T00:00:00.000Z", "service": "s", "method": "GET",'
    b' "route": "/", "path": "/", "status_code": 999, "duration_ms": 1}',
]


def synthetic_event(service: str, at: float, rng: random.Random) -> dict[str, object]:
    from interceptor.events import SCHEMA_VERSION, rfc3339_millis

    item = rng.randint(1, 200)
    return {
        "event_id": uuid.uuid4().hex, "event_time": rfc3339_millis(at), "service": service, "method": "GET",
        "route": "/products/{product_id}", "path": f"/products/{item}", "status_code": 200,
        "duration_ms": round(rng.uniform(1, 50), 3), "user_id": f"u{rng.randint(1, 50)}",
        "schema_version": SCHEMA_VERSION,
    }  # fmt: skip


def inject(kind: str, count: int, *, service: str, lateness_seconds: float = 600.0, seed: int | None = None) -> int:
    """Write test messages straight to the topic, bypassing the app: `malformed` ones, `late` ones (event time
    `lateness_seconds` in the past) or `out-of-order` ones (event times shuffled within the last 5 seconds)."""
    from confluent_kafka import Producer

    from config.settings import load_settings
    from event_log.topic import client_config

    settings = load_settings()
    rng = random.Random(seed)
    producer = Producer({**client_config(settings), "enable.idempotence": True})
    now = time.time()
    for i in range(count):
        if kind == "malformed":
            payload = MALFORMED[i % len(MALFORMED)]
        elif kind == "late":
            payload = json.dumps(synthetic_event(service, now - lateness_seconds, rng)).encode()
        elif kind == "out-of-order":
            payload = json.dumps(synthetic_event(service, now - rng.uniform(0, 5), rng)).encode()
        else:
            raise ValueError(f"unknown kind {kind!r}; allowed: malformed, late, out-of-order")
        producer.produce(settings.kafka.topic, payload)
    remaining = producer.flush(30)
    if remaining:
        raise RuntimeError(f"{remaining} injected messages were not delivered")
    log.info("injected kind=%s count=%d topic=%s", kind, count, settings.kafka.topic)
    return count


def main() -> None:
    import argparse

    from config.settings import load_settings

    parser = argparse.ArgumentParser(description="traffic for the demo shop, or test messages for the topic")
    parser.add_argument("--inject", choices=["malformed", "late", "out-of-order"], help="write test messages")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--lateness-seconds", type=float, default=600.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_settings()
    if args.inject:
        inject(args.inject, args.count, service=settings.demo.service_name, lateness_seconds=args.lateness_seconds,
               seed=settings.traffic.seed)  # fmt: skip
        return
    base = f"http://{settings.demo.host}:{settings.demo.port}"
    log.info("traffic start target=%s rate=%s", base, settings.traffic.rate)
    stats = asyncio.run(run(base, settings.traffic.rate, seed=settings.traffic.seed))
    log.info("traffic stop %s", " ".join(f"{k}={v}" for k, v in sorted(stats.items())))


if __name__ == "__main__":
    main()
