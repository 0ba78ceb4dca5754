"""A load generator for the stack benchmarks, in a process of its own (so its CPU time is its own, not the
sampler's): produces shop events straight to the topic, each with event time = when it was produced, at a
steady rate or as fast as it can (a burst). Events come from a pool made once (bench.streaming's generator:
routes with the checkout funnel's steps, users, user agents, errors); per event only its id and time change, so
the generator costs a few microseconds per event. Prints one JSON line: what it sent, when.

    python -m bench.load --service NAME --rate 5000 --seconds 600
    python -m bench.load --service NAME --count 300000            # a burst, as fast as it goes
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

import orjson

from config.settings import load_settings

POOL = 5_000
TICK_SECONDS = 0.005


def _pool(service: str, users: int, seed: int) -> list[dict[str, Any]]:
    from bench.streaming import _event

    rng = random.Random(seed)
    return [_event(service, 0.0, rng, users=users) for _ in range(POOL)]


def _rfc3339(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s)) + f".{int(epoch_s * 1000) % 1000:03d}Z"


def produce(
    service: str, rate: float | None, seconds: float | None, count: int | None, seed: int = 7
) -> dict[str, Any]:
    from confluent_kafka import Producer

    from event_log.topic import client_config

    settings = load_settings()
    topic = settings.kafka.topic
    producer = Producer(
        {
            **client_config(settings),
            "enable.idempotence": True,
            "linger.ms": 10,
            "queue.buffering.max.messages": 2_000_000,
        }
    )
    pool = _pool(service, users=2_000, seed=seed)
    prefix = f"{service}-{seed}-"
    sent = 0
    started_wall = time.time()
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        if count is not None:
            due = count
        else:
            assert rate is not None and seconds is not None
            if elapsed >= seconds:
                break
            due = int(elapsed * rate) + 1
        stamp = _rfc3339(time.time())
        while sent < due:
            event = pool[sent % POOL]
            event["event_id"] = f"{prefix}{sent}"
            event["event_time"] = stamp
            try:
                producer.produce(topic, orjson.dumps(event), key=event["user_id"])
            except BufferError:
                producer.poll(0.05)
                continue
            sent += 1
        producer.poll(0)
        if count is not None:
            break
        time.sleep(TICK_SECONDS)
    if producer.flush(120):
        raise RuntimeError("events were not delivered to Kafka within 120 s")
    ended_wall = time.time()
    return {
        "service": service,
        "sent": sent,
        "started_at": round(started_wall, 3),
        "ended_at": round(ended_wall, 3),
        "events_per_second": round(sent / max(ended_wall - started_wall, 1e-9), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--service", required=True)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--count", type=int)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.count is None and (args.rate is None or args.seconds is None):
        parser.error("give --rate and --seconds, or --count")
    print(json.dumps(produce(args.service, args.rate, args.seconds, args.count, args.seed)), flush=True)


if __name__ == "__main__":
    main()
