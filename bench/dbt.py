"""dbt benchmark: `dbt build` over one day of traffic at 1,000 events/s (86.4 million events), Kappa and Lambda
side by side in one run. JSON out.

A sandboxed catalog (`python -m infra up catalog`, scratch var/ on free ports) gets one UTC day of generated
events in `raw.http_events`, written with pyiceberg hour by hour (numpy-generated: 3 services, the demo's
routes with the checkout funnel, 5xx, 1 million users and 100,000 anonymous client addresses). The stream's
tables are then filled the way a stream that missed nothing would have left them: a first Lambda build
publishes the batch layer, and its rows are appended to `speed.*` (the DataStream minute windows as firing 0).
Then, timed, with the pipeline's own runner (`python -m infra dbt build`, what Dagster runs):

- **kappa**: staging, marts and every data and unit test;
- **lambda**: the same plus the six batch models for the day (published into Iceberg `batch.*`), the serving
  views and the reconciliation (which must find no difference: the speed rows are the batch rows).

Ratios: lambda / kappa seconds; events per second of build for each.

    python -m bench.dbt                 # 1,000 events/s over the day
    python -m bench.dbt --rate 100      # a smaller day (8.64 million events)

DuckDB gets `--memory-limit` (default 6g, not the pipeline's 1g): the Lambda batch layer over a day this busy
keeps some aggregates' state in memory (docs/benchmarks.md, "dbt").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from bench.streaming import ROUTES, SERVICES, _sandbox
from config.settings import REPO_ROOT, Settings
from lakehouse import contract, duckdb_views, iceberg

DAY = datetime(2026, 1, 5, tzinfo=UTC)
USERS = 1_000_000
ADDRESSES = 100_000


def _hour_of_traffic(schema: pa.Schema, hour: int, count: int, rng: np.random.Generator) -> pa.Table:
    """`count` events of the day's `hour`, as an Arrow table of `schema` (nulls where not generated)."""
    from demo.traffic import USER_AGENTS

    start_us = int(DAY.timestamp() + hour * 3600) * 1_000_000
    event_us = np.sort(start_us + rng.integers(0, 3600 * 1_000_000, count))
    weights = np.array([w for _, _, w in ROUTES], dtype=float)
    picked = rng.choice(len(ROUTES), count, p=weights / weights.sum())
    routes = np.array([r for _, r, _ in ROUTES], dtype=object)[picked]
    methods = np.array([m for m, _, _ in ROUTES], dtype=object)[picked]
    status = rng.choice(np.array([200, 404, 503], dtype=np.int32), count, p=[0.95, 0.03, 0.02])
    status = np.where(routes == "/errors/boom", np.int32(500), status)
    known = rng.random(count) < 0.7
    users = np.char.add("u", rng.integers(0, USERS, count).astype(str)).astype(object)
    addresses = rng.integers(0, ADDRESSES, count)
    columns: dict[str, Any] = {
        "event_id": np.char.add(f"{hour:02d}-", np.arange(count).astype(str)).astype(object),
        "event_time": event_us,
        "service": np.array(SERVICES, dtype=object)[rng.integers(0, len(SERVICES), count)],
        "method": methods,
        "route": routes,
        "path": routes,
        "status_code": status,
        "duration_ms": np.round(rng.lognormal(3, 0.8, count), 3),
        "user_id": pa.array(users, mask=~known, type=pa.string()),
        "client_address": np.char.add("10.", (addresses // 256).astype(str)).astype(object),
        "user_agent": np.array(USER_AGENTS, dtype=object)[rng.integers(0, len(USER_AGENTS), count)],
        "schema_version": np.ones(count, dtype=np.int32),
        "kafka_partition": (np.arange(count) % 3).astype(np.int32),
        "kafka_offset": np.arange(count, dtype=np.int64),
        "kafka_timestamp": event_us,
        "ingested_at": event_us + 1_000_000,
        "device_class": np.full(count, "desktop", dtype=object),
        "is_bot": np.zeros(count, dtype=bool),
    }
    arrays = [pa.array(columns[f.name], type=f.type) if f.name in columns else pa.nulls(count, f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _fill_raw(settings: Settings, rate: float) -> tuple[int, float]:
    raw = iceberg.load(settings).load_table("raw.http_events")
    schema = raw.schema().as_arrow()
    rng = np.random.default_rng(11)
    per_hour = int(rate * 3600)
    started = time.monotonic()
    for hour in range(24):
        raw.append(_hour_of_traffic(schema, hour, per_hour, rng))
        print(f"raw.http_events: hour {hour + 1}/24 written", file=sys.stderr, flush=True)
    return per_hour * 24, time.monotonic() - started


def _speed_from_batch(settings: Settings) -> dict[str, int]:
    """Append each batch.* table's rows to its speed.* table (a stream that missed nothing)."""
    catalog = iceberg.load(settings)
    copied = {}
    for spec in contract.BATCH_TABLES:
        measure = spec.name
        target_name = (
            "speed.requests_per_route_minute_firings"
            if measure == "requests_per_route_minute"
            else (f"speed.{measure}")
        )
        rows = catalog.load_table(spec.identifier).scan().to_arrow()
        target = catalog.load_table(target_name)
        schema = target.schema().as_arrow()
        filled = {
            "firing": pa.array(np.zeros(rows.num_rows, dtype=np.int32)),
            "fired_at": rows.column("window_end") if "window_end" in rows.column_names else None,
        }
        arrays = [
            rows.column(f.name).cast(f.type) if f.name in rows.column_names
            else (filled[f.name].cast(f.type) if filled.get(f.name) is not None else pa.nulls(rows.num_rows, f.type))
            for f in schema
        ]  # fmt: skip
        target.append(pa.Table.from_arrays(arrays, schema=schema))
        copied[target_name] = rows.num_rows
    return copied


MEMORY_LIMIT = "6g"


def _dbt_build(settings: Settings, mode: str, extra: str = "", memory_limit: str = MEMORY_LIMIT) -> tuple[float, str]:
    day = f"batch_start: {DAY.date()}, batch_end: {(DAY + timedelta(days=1)).date()}"
    env = {**os.environ, "PIPELINE_DBT__MEMORY_LIMIT": memory_limit}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "infra", "dbt", "build", "--vars", f"{{pipeline_mode: {mode}, {day}{extra}}}"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=7200,
    )  # fmt: skip
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"dbt build ({mode}) failed:\n{proc.stdout[-4000:]}")
    done = [line for line in proc.stdout.splitlines() if "Done. PASS=" in line]
    return seconds, done[-1].split("Done. ", 1)[-1] if done else ""


def _slowest(settings: Settings, count: int = 8) -> dict[str, float]:
    """The slowest nodes of the last dbt run (dbt's run_results.json)."""
    results = json.loads((settings.var_dir / "dbt" / "target" / "run_results.json").read_text())["results"]
    ranked = sorted(results, key=lambda r: r["execution_time"], reverse=True)[:count]
    return {r["unique_id"].split(".", 2)[-1]: round(r["execution_time"], 1) for r in ranked}


def run(rate: float = 1000.0, memory_limit: str = MEMORY_LIMIT) -> dict[str, Any]:
    with _sandbox("bench-dbt-", ("catalog",)) as settings:
        events, write_s = _fill_raw(settings, rate)
        print("first Lambda build (fills batch.*)", file=sys.stderr, flush=True)
        first_s, _ = _dbt_build(settings, "lambda", ", reconciliation_tolerance: 1", memory_limit)
        copied = _speed_from_batch(settings)
        print("timed builds", file=sys.stderr, flush=True)
        kappa_s, kappa_result = _dbt_build(settings, "kappa", memory_limit=memory_limit)
        kappa_slowest = _slowest(settings)
        lambda_s, lambda_result = _dbt_build(settings, "lambda", ", reconciliation_tolerance: 0", memory_limit)
        lambda_slowest = _slowest(settings)
        with duckdb_views.connect(settings) as con:
            batch_count = con.sql(
                f"SELECT sum(request_count) FROM batch.api_requests_per_minute "
                f"WHERE window_start >= TIMESTAMPTZ '{DAY.isoformat()}'"
            ).fetchone()
        database = settings.var_dir / "dbt" / "lake.duckdb"
        return {
            "day": DAY.date().isoformat(),
            "average_events_per_second_of_the_day": rate,
            "events": events,
            "raw_write_seconds": round(write_s, 1),
            "first_lambda_build_seconds_with_empty_speed_tables": round(first_s, 1),
            "speed_rows_copied_from_batch": copied,
            "kappa_build_seconds": round(kappa_s, 1),
            "kappa_result": kappa_result,
            "kappa_slowest_nodes_seconds": kappa_slowest,
            "lambda_build_seconds": round(lambda_s, 1),
            "lambda_result": lambda_result,
            "lambda_slowest_nodes_seconds": lambda_slowest,
            "lambda_over_kappa": round(lambda_s / kappa_s, 2),
            "kappa_events_per_second": round(events / kappa_s),
            "lambda_events_per_second": round(events / lambda_s),
            "verified_batch_counts_every_event": bool(batch_count and batch_count[0] == events),
            "duckdb_memory_limit": memory_limit,
            "duckdb_file_mib": round(database.stat().st_size / 2**20, 1) if database.exists() else None,
            "cpus": os.cpu_count(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dbt", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s over the day (default: %(default)s)")
    parser.add_argument("--memory-limit", default=MEMORY_LIMIT, help="DuckDB's (default: %(default)s)")
    args = parser.parse_args()
    print(json.dumps(run(args.rate, args.memory_limit), indent=2))


if __name__ == "__main__":
    main()
