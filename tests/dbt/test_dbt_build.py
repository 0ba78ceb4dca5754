"""`dbt build` (models, data tests, unit tests) on data that went through the real pipeline: the streaming
job on a local mini-cluster over two hours of generated traffic (funnels completed and
abandoned, server errors, bots, a duplicate delivery, late events, malformed messages) into Iceberg; dbt reads
it offline through DuckDB. Then a row broken on purpose makes exactly the matching data test fail."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from config.settings import REPO_ROOT, Settings, env_var, load_settings
from flink_jobs import JOBS
from lakehouse import duckdb_views, iceberg
from tests.flink.conftest import Lake

pytestmark = pytest.mark.slow

DAY = datetime(2026, 11, 24, tzinfo=UTC)
FUNNEL = ("/cart/items", "/checkout", "/payments")
FUNNEL_STEPS = (3, 1, 2)  # 30 funnels in turn: 10 completed, 10 stopped after step 1, 10 after step 2
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
)


def message(n: int, e: dict[str, Any], rng: random.Random) -> str:
    return json.dumps({
        "event_id": f"e{n}", "event_time": e["at"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "service": "shop", "method": "POST" if e["route"].startswith(FUNNEL) else "GET", "route": e["route"],
        "path": e["route"], "status_code": e["status"], "duration_ms": round(rng.uniform(2, 400), 3),
        "user_id": e["user"], "user_agent": AGENTS[n % 3 if n % 10 == 0 else n % 2],
    })  # fmt: skip


def traffic() -> list[str]:
    """Two hours of a shop, in arrival order: browsing, funnels (some complete, some stop), errors, bots, a
    duplicate delivery, two events an hour late, two malformed messages."""
    rng = random.Random(11)
    events: list[dict[str, Any]] = []
    for i in range(1500):
        at = DAY + timedelta(hours=10, seconds=i * 4.8)
        user = f"u{rng.randint(1, 40)}"
        route = rng.choice(("/products", "/products/{product_id}", "/search"))
        events.append({"at": at, "user": user, "route": route, "status": 503 if i % 37 == 0 else 200})
        if i % 50 == 0:  # a buyer's funnel: all three steps, or stops after one or two
            for step, funnel_route in enumerate(FUNNEL[: FUNNEL_STEPS[(i // 50) % 3]]):
                events.append({"at": at + timedelta(seconds=20 * (step + 1)), "user": f"buyer{i}",
                               "route": funnel_route, "status": 200})  # fmt: skip
    events.sort(key=lambda e: e["at"])
    messages = [message(n, e, rng) for n, e in enumerate(events)]
    messages.insert(300, messages[299])  # a duplicate delivery
    for k in (1, 2):  # an hour behind the stream when they arrive
        late = json.loads(messages[1200 + k])
        late |= {"event_id": f"late{k}", "event_time": late["event_time"].replace("T11:", "T10:", 1)}
        messages.insert(1200 + k, json.dumps(late))
    messages[500:500] = ["{not json", json.dumps({"event_id": "x", "service": "shop"})]
    # the next day begins: the stream's minutes there are what a Lambda serving view shows after the closed day
    next_day = [{"at": DAY + timedelta(days=1, seconds=30 * i), "user": "u1", "route": "/products", "status": 200}
                for i in range(20)]  # fmt: skip
    return messages + [message(10_000 + n, e, rng) for n, e in enumerate(next_day)]


@pytest.fixture(scope="module")
def filled_lake(catalog_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    root = tmp_path_factory.mktemp("dbt-lake")
    settings = load_settings(iceberg={"catalog_name": "dbt_lake", "warehouse": (root / "warehouse").as_uri()})
    iceberg.ensure_tables(settings)
    filled = Lake(settings=settings, root=root)
    messages = traffic()
    for job in JOBS:
        filled.run_job(job, messages, name=job)
    yield filled


@pytest.fixture(scope="module")
def build(filled_lake: Lake) -> subprocess.CompletedProcess[str]:
    # the jobs are done: every late event is checked against raw.http_events, however recent
    return dbt(filled_lake, "build", "--vars", "{late_events_settle_minutes: 0}")


def lake_env(target: Lake, prefix: str = "") -> dict[str, str]:
    """The variables that point dbt at the test's lake: its catalog, and its own DuckDB file and folders."""
    return {
        env_var("iceberg.catalog_name"): target.settings.iceberg.catalog_name,
        env_var("iceberg.warehouse"): target.settings.warehouse,
        "DBT_DUCKDB_PATH": str(target.root / f"{prefix}lake.duckdb"),
        "DBT_TARGET_PATH": str(target.root / f"{prefix or 'dbt-'}target"),
        "DBT_LOG_PATH": str(target.root / f"{prefix or 'dbt-'}logs"),
        "DBT_EXTERNAL_ROOT": str(target.root / f"{prefix or 'dbt-'}external"),
    }


def dbt(target: Lake, *args: str) -> subprocess.CompletedProcess[str]:
    """dbt as a user runs it (`python -m infra dbt ...`: the pipeline's vars), on the test's lake."""
    env = {**os.environ, **lake_env(target)}
    return subprocess.run(
        [sys.executable, "-m", "infra", "dbt", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def summary(proc: subprocess.CompletedProcess[str]) -> str:
    """What failed and why: dbt's own summary at the end of its output."""
    out = proc.stdout
    start = out.find("Completed with")
    return out[start:][-6000:] if start >= 0 else out[-6000:]


def test_dbt_build_passes_on_pipeline_output(build: subprocess.CompletedProcess[str]) -> None:
    assert build.returncode == 0, summary(build)
    assert "ERROR=0" in build.stdout and "PASS=" in build.stdout, summary(build)


def valid_event_ids_of_the_closed_day() -> set[str]:
    """The event_ids of the valid events of 2026-11-24 in the traffic (each once, the late ones included)."""
    valid_ids = set()
    for message in traffic():
        try:
            event = json.loads(message)
        except ValueError:
            continue
        if "route" in event and event["event_time"].startswith("2026-11-24"):
            valid_ids.add(event["event_id"])
    return valid_ids


def test_marts_hold_the_numbers_of_the_traffic(build: subprocess.CompletedProcess[str], filled_lake: Lake) -> None:
    valid_ids = valid_event_ids_of_the_closed_day()
    with duckdb.connect(str(filled_lake.root / "lake.duckdb"), read_only=True) as con:
        quality = con.sql(
            "SELECT event_count, late_event_count FROM pipeline_quality_daily WHERE day = DATE '2026-11-24'"
        ).fetchall()
        dead_letters = con.sql("SELECT sum(dead_letter_count) FROM pipeline_quality_daily").fetchone()
        funnels = con.sql(
            "SELECT funnels_started, funnels_completed, abandoned_at_step_1, abandoned_at_step_2, "
            "abandoned_at_step_3_or_later FROM checkout_funnel_conversion"
        ).fetchall()
        health = con.sql("SELECT sum(request_count) FROM api_health_daily WHERE event_date = '2026-11-24'").fetchone()
    # each event once (the duplicate delivery too), the two late ones among them
    assert quality == [(len(valid_ids), 2)]
    assert dead_letters == (2,)
    assert funnels == [(30, 10, 10, 10, 0)]
    assert health == (len(valid_ids),)


OFFLINE = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
LAMBDA = "{pipeline_mode: lambda, batch_start: 2026-11-24, batch_end: 2026-11-25, late_events_settle_minutes: 0}"
# measure -> the columns compared: its key (the day column first) and its counts
MEASURES = {
    "api_requests_per_minute": "window_start, service, route, status_code, request_count, error_count",
    "api_traffic_sliding_5m": "window_start, service, route, request_count, error_count",
    "requests_per_route_minute": "window_start, service, route, request_count, error_count",
    "user_sessions": "session_start, service, user_key, session_end, request_count, error_count",
    "api_daily_running_totals": "window_start, window_end, service, request_count, distinct_users",
    "checkout_funnels": "window_start, service, user_key, window_end, steps, outcome, closed_by",
}


def test_lambda_serves_batch_rows_for_the_closed_day_and_reconciles_exactly_the_late_events(
    build: subprocess.CompletedProcess[str], filled_lake: Lake
) -> None:
    proc = dbt(filled_lake, "build", "--vars", LAMBDA)
    assert proc.returncode == 0, summary(proc)
    closed_day = datetime(2026, 11, 24).date()
    speed_days = set()
    with duckdb.connect(str(filled_lake.root / "lake.duckdb"), read_only=True, config=OFFLINE) as con:
        duckdb_views.load_extensions(con)
        for measure, columns in MEASURES.items():
            served = set(con.sql(f"SELECT {columns}, layer FROM serving_{measure}").fetchall())
            batch = set(con.sql(f"SELECT {columns}, 'batch' FROM batch.{measure}").fetchall())
            speed = set(con.sql(f"SELECT {columns}, 'speed' FROM speed.{measure}").fetchall())
            assert batch, measure
            # the closed day from the batch layer, the next day from the stream
            assert served == batch | {row for row in speed if row[0].date() > closed_day}, measure
            speed_days |= {row[0].date() for row in served if row[-1] == "speed"}
        reconciliation = {
            measure: (day, speed_count, batch_count, difference)
            for day, measure, speed_count, batch_count, difference in con.sql(
                "SELECT day, measure, speed_count, batch_count, difference FROM reconciliation_daily"
            ).fetchall()
        }
        late = dict(con.sql("SELECT window_name, count(*) FROM raw.late_events GROUP BY 1").fetchall())
    assert speed_days == {closed_day + timedelta(days=1)}  # (the next day has no funnels)
    # the stream left out the late events; the batch layer, reading raw.http_events, counts them: each in its
    # measure's unit (a request is in 5 sliding windows), as many as the job that missed them reported
    assert (late["sql_windows"], late["requests_per_route_minute"]) == (2, 2)
    expected = {
        "api_requests_per_minute": late["sql_windows"],
        "api_traffic_sliding_5m": 5 * late["sql_windows"],
        "requests_per_route_minute": late["requests_per_route_minute"],
        "user_sessions": late["sql_windows"],
        "api_daily_running_totals": late["sql_windows"],
        "checkout_funnels": late.get("checkout_funnel", 0),
    }
    assert {m: (day, difference) for m, (day, _, _, difference) in reconciliation.items()} == {
        m: (closed_day, difference) for m, difference in expected.items()
    }
    # any engine reads the published batch layer: the Iceberg table holds the same rows
    published = filled_lake.rows("batch.api_requests_per_minute", ("request_count",))
    assert sum(r["request_count"] for r in published) == reconciliation["api_requests_per_minute"][2]

    # a tolerance of 0 makes the reconciliation test fail on those late events
    strict = dbt(
        filled_lake,
        "test",
        "--select",
        "reconciliation_daily",
        "--vars",
        LAMBDA[:-1] + ", reconciliation_tolerance: 0}",
    )
    failed = [line for line in strict.stdout.splitlines() if " FAIL " in line]
    assert strict.returncode != 0 and len(failed) == 1 and "relative_difference" in failed[0], summary(strict)


def test_a_broken_row_fails_the_matching_data_test(filled_lake: Lake) -> None:
    """An event with a status outside HTTP's range (which the streaming job would never write) appended to
    raw.http_events: exactly the status range test fails, and everything else still passes."""
    table = filled_lake.catalog().load_table("raw.http_events")
    good = table.scan(limit=1).to_arrow()
    for column, value in (("status_code", pa.array([999], pa.int32())), ("event_id", pa.array(["broken-1"]))):
        good = good.set_column(good.schema.get_field_index(column), good.schema.field(column), value)
    broken = good
    table.append(broken)
    try:
        proc = dbt(filled_lake, "build", "--select", "stg_http_events")
        failed = [line for line in proc.stdout.splitlines() if " FAIL " in line]
        assert proc.returncode != 0
        assert len(failed) == 1 and "expression_is_true_stg_http_events_status_code" in failed[0], proc.stdout[-3000:]
    finally:
        table.delete("event_id == 'broken-1'")


def test_a_second_delivery_fails_the_uniqueness_test_only_within_the_dedup_horizon(
    build: subprocess.CompletedProcess[str], filled_lake: Lake
) -> None:
    """A copy of an event appended to raw.http_events, ingested a minute after the newest row: within the stream's
    de-duplication horizon, so `unique_within` fails (and only it). Ingested two hours later instead, the first
    delivery lies outside the horizon, where the stream keeps a second delivery by design: the test passes."""
    table = filled_lake.catalog().load_table("raw.http_events")
    rows = table.scan().to_arrow()
    newest = max(rows.column("ingested_at").to_pylist())
    original = rows.filter(pa.compute.equal(rows.column("event_id"), "e42"))
    assert original.num_rows == 1
    column = original.schema.get_field_index("ingested_at")
    try:
        for later, fails in ((timedelta(minutes=1), True), (timedelta(hours=2), False)):
            copy = original.set_column(column, original.schema.field(column), pa.array([newest + later]))
            table.append(copy)
            proc = dbt(filled_lake, "test", "--select", "stg_http_events")
            failed = [line for line in proc.stdout.splitlines() if " FAIL " in line]
            if fails:
                assert len(failed) == 1 and "unique_within_stg_http_events_event_id" in failed[0], summary(proc)
            else:
                assert proc.returncode == 0 and not failed, summary(proc)
            table.delete(f"event_id == 'e42' and ingested_at > '{newest.isoformat()}'")
            table = filled_lake.catalog().load_table("raw.http_events")
    finally:
        table.delete(f"event_id == 'e42' and ingested_at > '{newest.isoformat()}'")


def test_api_health_daily_recomputes_only_the_days_that_received_events(
    build: subprocess.CompletedProcess[str], filled_lake: Lake
) -> None:
    """The incremental mart: an event of 2026-11-24 arriving after the build reopens that day (its request count
    grows by one); 2026-11-25, which received nothing, is left as the previous build wrote it (marked here, and
    the mark is still there). `--full-refresh` recomputes every day."""
    database = str(filled_lake.root / "lake.duckdb")
    count_of_day = "SELECT sum(request_count) FROM api_health_daily WHERE event_date = DATE '2026-11-24'"
    with duckdb.connect(database) as con:
        before = con.sql(count_of_day).fetchone()
        assert before is not None and before[0] > 0
        con.execute("UPDATE api_health_daily SET max_duration_ms = -1 WHERE event_date = DATE '2026-11-25'")
    table = filled_lake.catalog().load_table("raw.http_events")
    rows = table.scan().to_arrow()
    newest = max(rows.column("ingested_at").to_pylist())
    late = rows.filter(pa.compute.equal(rows.column("event_id"), "e42"))
    for name, value in (("event_id", pa.array(["arrived-later"])), ("ingested_at", pa.array([newest + timedelta(1)]))):
        late = late.set_column(late.schema.get_field_index(name), late.schema.field(name), value)
    table.append(late)
    try:
        run = dbt(filled_lake, "run", "--select", "api_health_daily", "--vars", "{marts_reopen_minutes: 0}")
        assert run.returncode == 0, summary(run)
        with duckdb.connect(database, read_only=True) as con:
            assert con.sql(count_of_day).fetchone() == (before[0] + 1,)
            untouched = con.sql("SELECT DISTINCT max_duration_ms FROM api_health_daily WHERE event_date = '2026-11-25'")
            assert untouched.fetchall() == [(-1,)]
    finally:
        table.delete("event_id == 'arrived-later'")
        full = dbt(filled_lake, "run", "--select", "api_health_daily", "--full-refresh")
        assert full.returncode == 0, summary(full)
    with duckdb.connect(database, read_only=True) as con:
        assert con.sql(count_of_day).fetchone() == before
        assert -1 not in {r[0] for r in con.sql("SELECT max_duration_ms FROM api_health_daily").fetchall()}


def test_dagster_materializes_a_day_partition_of_the_batch_layer(
    build: subprocess.CompletedProcess[str], filled_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch layer's assets (dagster_project/defs/analytics/assets.py), materialised for the day partition
    2026-11-24 with Dagster's `materialize()`: dbt runs with that window, each of the six models (and the day's unique
    events they read) is materialised for the partition with its dbt tests as passing asset checks, and the
    Iceberg batch tables hold the day."""
    import dagster as dg

    from dagster_project.definitions import build_definitions

    for key, value in {"PIPELINE_PIPELINE__MODE": "lambda", **lake_env(filled_lake, prefix="dagster-")}.items():
        monkeypatch.setenv(key, value)
    table = filled_lake.catalog().load_table("batch.api_requests_per_minute")
    table.delete("window_start >= '2026-11-24T00:00:00+00:00'")  # what the earlier tests published
    defs = build_definitions(load_settings())
    batch_layer = defs.resolve_assets_def(dg.AssetKey(["dbt", "batch_api_requests_per_minute"]))
    # the resolved asset carries the Definitions' resources (the dbt CLI of this environment)
    result = dg.materialize([batch_layer], partition_key="2026-11-24", raise_on_error=False)
    failures = [str(e.step_failure_data.error) for e in result.all_events if e.is_step_failure]
    assert result.success, failures
    materialized = {e.asset_key.path[-1]: e.partition for e in result.get_asset_materialization_events()}
    assert materialized == {name: "2026-11-24" for name in (
        "int_batch_events", "batch_api_requests_per_minute", "batch_api_traffic_sliding_5m",
        "batch_requests_per_route_minute", "batch_user_sessions", "batch_api_daily_running_totals",
        "batch_checkout_funnels",
    )}  # fmt: skip
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]
    # every valid event of the day, late ones included, counted once in the published batch layer
    published = filled_lake.rows("batch.api_requests_per_minute", ("window_start", "request_count"))
    closed_day = datetime(2026, 11, 24).date()
    day_total = sum(r["request_count"] for r in published if r["window_start"].date() == closed_day)
    assert day_total == len(valid_event_ids_of_the_closed_day())
