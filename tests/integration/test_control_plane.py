"""Dagster as the control plane of a real stack (`python -m infra up`: Kafka, the catalog, the Flink cluster
with its three jobs, Dagster's webserver and daemon, the demo traffic), Kappa mode:

- materialising a job's asset deploys it, leaves a current job alone, upgrades one whose code changed (stop
  with a savepoint, start from it);
- the sensors, evaluated with `build_sensor_context`: job observations, a recovery requested for a job
  cancelled by hand; streaming checks that pass, and fail when a threshold is crossed;
- the observation job and the maintenance job;
- the UI in a real browser (Debian's Chromium, Playwright): the asset graph shows the topic, the jobs, the
  tables and the dbt models; a backfill of two day partitions launched there replays them on the cluster (one
  Flink batch job per day) and the speed table then holds exactly their events; screenshots are kept in
  var/test-artifacts/;
- the daemon itself: a job killed by hand comes back from its checkpoint, counts exact.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from confluent_kafka import Producer

from config.settings import load_settings
from dagster_project.definitions import build_definitions
from event_log.topic import client_config
from flink_jobs import JOBS
from infra import flink_deploy
from infra.install import CHROMIUM, pyflink_dir
from infra.services import flink
from lakehouse import iceberg
from tests.integration.dagster_ui import (
    asset_graph_nodes,
    launch_backfill_from_ui,
    launch_chromium,
    screenshot,
    wait_backfill_finished,
    wait_code_locations_loaded,
)
from tests.integration.known_events import event, expected_per_minute, per_minute, produce, raw_count
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

# the daemon looks at the jobs every 5 s here (30 s by default)
STACK_ENV = {"PIPELINE_DAGSTER__HEALTH_INTERVAL_SECONDS": "5"}


@pytest.fixture(scope="module")
def defs(stack) -> dg.Definitions:
    return build_definitions(load_settings())


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def _materialize(defs: dg.Definitions, key: dg.AssetKey, **kwargs: object) -> dict[str, object]:
    """Materialise one asset in process (its resources as the Definitions bind them); its metadata."""
    result = dg.materialize([defs.resolve_assets_def(key)], selection=[key], **kwargs)  # type: ignore[arg-type]
    assert result.success
    [materialization] = result.asset_materializations_for_node(defs.resolve_assets_def(key).node_def.name)
    return {k: v.value for k, v in materialization.metadata.items()}


def _cancel_by_hand(settings, job: str) -> str:
    """`flink cancel <id>` with the Flink CLI, as an operator would."""
    found = flink_deploy.find_job(settings, job)
    assert found is not None and found["state"] == "RUNNING", found
    proc = subprocess.run(
        ["bash", str(pyflink_dir(settings) / "bin" / "flink"), "cancel", *flink.cli_target(settings), found["jid"]],
        capture_output=True, text=True, timeout=120, env={**os.environ, **flink.flink_env(settings)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    wait_for(lambda: flink_deploy.find_job(settings, job) is None, 60, f"{job} to be cancelled")
    return str(found["jid"])


def test_materializing_a_job_leaves_it_upgrades_it_and_starts_it(stack, defs):
    s, key = stack.settings, dg.AssetKey(["flink", "streaming"])
    before = flink_deploy.find_job(s, "streaming")
    assert before is not None
    unchanged = _materialize(defs, key)
    assert unchanged["action"] == "unchanged" and unchanged["job_id"] == before["jid"]
    # another checkout's code is running: stop with a savepoint, start the current code from it
    state_file = flink_deploy.job_dir(s, "streaming") / "state.json"
    state_file.write_text(json.dumps(json.loads(state_file.read_text()) | {"code_version": "older-checkout"}))
    upgraded = _materialize(defs, key)
    assert upgraded["action"] == "upgraded" and upgraded["job_id"] != before["jid"], upgraded
    assert "savepoint" in str(upgraded["restored_from"]) and upgraded["code_version"] == flink_deploy.code_version(
        "streaming"
    )
    # stopped on purpose (`python -m infra down jobs` does this): a deploy starts it from that savepoint
    savepoint = flink_deploy.stop(s, "streaming")
    assert savepoint and not flink_deploy.should_run(s, "streaming")
    started = _materialize(defs, key)
    assert started["action"] == "started" and started["restored_from"] == savepoint, started
    assert flink_deploy.find_job(s, "streaming")["state"] == "RUNNING"  # type: ignore[index]


def test_health_sensor_observes_the_jobs_and_asks_to_recover_a_cancelled_one(stack, defs, instance):
    s = stack.settings
    sensor = defs.resolve_sensor_def("flink_jobs_on_failure")

    def tick(cursor: str | None) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=defs.resources)
        return sensor.evaluate_tick(context)  # type: ignore[return-value]

    # the test before restarted the job from a savepoint: its first checkpoint after that may still be coming
    wait_for(
        lambda: all(flink_deploy.status(s, job).last_checkpoint_id for job in JOBS), 60, "a checkpoint of every job"
    )
    first = tick(None)
    assert not first.run_requests
    observations = [e for e in first.asset_events if isinstance(e, dg.AssetObservation)]
    observed = {e.asset_key.path[-1]: e.metadata for e in observations}
    assert set(observed) == set(JOBS)
    assert all(m["state"].value == "RUNNING" for m in observed.values()), observed
    assert all(m["last_checkpoint_id"].value > 0 for m in observed.values())
    assert not tick(first.cursor).asset_events  # nothing changed: no new observation

    lost = _cancel_by_hand(s, "streaming")
    second = tick(first.cursor)
    [request] = second.run_requests or []
    assert request.asset_selection == [dg.AssetKey(["flink", "streaming"])]
    [seen] = [e for e in second.asset_events if isinstance(e, dg.AssetObservation)]
    assert seen.metadata["state"].value == "NOT_RUNNING" and seen.metadata["job_id"].value == lost
    # gone for longer than dagster.unhealthy_after_seconds (as a cursor from earlier ticks remembers it): the
    # job's `running` check fails, saying for how long and what the cluster has
    earlier = json.loads(second.cursor or "{}")
    earlier["streaming"]["gone_since"] = time.time() - s.dagster.unhealthy_after_seconds - 30
    late = tick(json.dumps(earlier))
    [failing] = [e for e in late.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert failing.check_name == "running" and not failing.passed, failing
    assert failing.description and "NOT_RUNNING for" in failing.description and "TaskManager(s)" in failing.description
    # the requested run: the deploy of a job that should run is a recovery from its latest checkpoint
    recovery = _materialize(defs, request.asset_selection[0], tags=request.tags, instance=instance)
    assert recovery["action"] == "recovered" and "/chk-" in str(recovery["restored_from"]), recovery
    assert str(recovery["restored_from"]).split("/")[-2] == lost
    # once the run is in, the sensor sees the job running again and asks for nothing more
    third = tick(second.cursor)
    assert not third.run_requests
    [back] = [e for e in third.asset_events if isinstance(e, dg.AssetObservation)]
    assert back.metadata["state"].value == "RUNNING" and back.metadata["recoveries"].value == 1


def test_streaming_checks_pass_on_a_healthy_stack_and_fail_past_a_threshold(stack, defs, instance, monkeypatch):
    sensor = defs.resolve_sensor_def("streaming_on_staleness_or_lag")
    s = stack.settings
    wait_for(lambda: raw_count(s, s.demo.service_name) > 0, 120, "demo traffic in raw.http_events")

    def evaluations(
        cursor: str | None = None,
    ) -> tuple[dict[tuple[str, str], dg.AssetCheckEvaluation], dg.SensorResult]:
        result: dg.SensorResult = sensor.evaluate_tick(  # type: ignore[assignment]
            dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=defs.resources)
        )
        found = {
            (e.asset_key.to_user_string(), e.check_name): e
            for e in result.asset_events
            if isinstance(e, dg.AssetCheckEvaluation)
        }
        return found, result

    healthy, result = evaluations()
    assert len(healthy) == 9 + 1 + 2  # freshness of each streamed table, lag of the job, the two rates
    failing = {k: e.description for k, e in healthy.items() if not e.passed}
    # the jobs' late-event table may not have been written yet on a fresh stack: it has no commit to judge
    assert set(failing) <= {("iceberg/raw/late_events", "freshness")}, failing
    assert healthy[("flink/streaming", "consumer_lag")].metadata["lag_events"].value >= 0
    observed = {e.asset_key.to_user_string() for e in result.asset_events if isinstance(e, dg.AssetObservation)}
    assert {"kafka/http_events", "iceberg/raw/http_events", "iceberg/speed/api_requests_per_minute"} <= observed
    # right after: the same results and tables are not recorded again
    again, repeated = evaluations(result.cursor)
    assert set(again) <= set(failing) and not any(isinstance(e, dg.AssetObservation) for e in repeated.asset_events)

    # a malformed message with no tolerance for dead letters: the rate check fails, and says why
    producer = Producer(client_config(s))
    producer.produce(s.kafka.topic, b"{not json")
    assert producer.flush(30) == 0
    dead = iceberg.load(s).load_table("raw.dead_letter_events")
    wait_for(lambda: dead.refresh().scan().count() > 0, 60, "the dead letter")
    monkeypatch.setenv("PIPELINE_CHECKS__MAX_DEAD_LETTER_RATE", "0")
    strict, _ = evaluations(repeated.cursor)  # a result that changed is recorded at once
    verdict = strict[("iceberg/raw/dead_letter_events", "dead_letter_rate")]
    assert not verdict.passed and "malformed" in (verdict.description or ""), verdict
    monkeypatch.setenv("PIPELINE_CHECKS__FRESHNESS_MINUTES", "1")
    assert evaluations()[0][("iceberg/raw/http_events", "freshness")].passed  # the stream commits every 2 s


def test_observing_the_topic_and_maintaining_the_tables(stack, defs, instance):
    observed = defs.resolve_job_def("observe_sources_job").execute_in_process(instance=instance)
    assert observed.success
    [observation] = [
        e.event_specific_data.asset_observation  # type: ignore[union-attr]
        for e in observed.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    ]
    metadata = {k: v.value for k, v in observation.metadata.items()}
    assert metadata["partitions"] == stack.settings.kafka.partitions and metadata["end_offset_total"] > 0
    assert metadata["events_per_second"] > 0  # the demo traffic, 20 requests/s
    assert all(metadata[f"consumer_lag/{job}"] >= 0 for job in JOBS), metadata

    maintained = defs.resolve_job_def("table_maintenance_job").execute_in_process(instance=instance)
    assert maintained.success
    tables = {
        e.event_specific_data.asset_observation.asset_key.to_user_string()  # type: ignore[union-attr]
        for e in maintained.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    }
    assert "iceberg/raw/http_events" in tables and not any("batch" in t for t in tables)


def test_the_ui_shows_the_pipeline_and_a_backfill_of_two_days_replays_them(stack):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `python -m infra install --browser` (make test does)"
    s = stack.settings
    service = f"ui-{uuid.uuid4().hex[:8]}"
    # events of two closed days: late for the stream (only raw.http_events keeps them) until a replay counts them
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    days = [today - timedelta(days=3), today - timedelta(days=2)]
    events = [event(service, i, at=day + timedelta(minutes=i % 7, seconds=i)) for day in days for i in range(60)]
    produce(s, events)
    wait_for(lambda: raw_count(s, service) == len(events), 120, "the two days' events in raw.http_events")
    assert per_minute(s, service) == {}

    base_url = f"http://{s.dagster.host}:{s.dagster.port}"
    assets = wait_code_locations_loaded(base_url)
    with sync_playwright() as playwright:
        context = launch_chromium(playwright)
        page = context.new_page()
        try:
            shown = asset_graph_nodes(page, base_url, screenshot_name="dagster-asset-lineage")
            assert {(group, path[-1]) for path, group in assets} <= shown
            # the topic, the jobs, the tables and the dbt models, each under its group
            assert ("ingest", "http_events") in shown
            assert {("streaming", job) for job in JOBS} <= shown
            assert {("lake", "http_events"), ("lake", "api_requests_per_minute"), ("lake", "late_events")} <= shown
            assert {("dbt_staging", "stg_http_events"), ("dbt_marts", "api_health_daily")} <= shown
            first, last = (f"{day:%Y-%m-%d}" for day in days)
            backfill = launch_backfill_from_ui(
                page, base_url, ["iceberg", "speed", "api_requests_per_minute"], first, last
            )
            state = wait_backfill_finished(page, base_url, backfill, timeout=600)
            screenshot(page, "dagster-backfill-finished")
        except BaseException:
            screenshot(page, "dagster-ui-failure")
            raise
        finally:
            context.close()
    assert sorted(state["partitionNames"]) == [first, last]
    assert len(state["runs"]) == 2  # a Flink replay per day
    assert per_minute(s, service) == expected_per_minute(events)


def test_the_daemon_brings_back_a_job_killed_by_hand_and_counts_stay_exact(stack):
    """The health sensor running in the stack's own daemon: `flink cancel` of the streaming job while events
    arrive; it comes back from its latest checkpoint, and every event is counted once in its minute windows."""
    s = stack.settings
    service = f"daemon-{uuid.uuid4().hex[:8]}"
    first = [event(service, i) for i in range(200)]
    produce(s, first)
    wait_for(lambda: raw_count(s, service) == len(first), 120, "the first events in raw.http_events")
    state_file = flink_deploy.job_dir(s, "streaming") / "state.json"
    recoveries = json.loads(state_file.read_text()).get("recoveries", 0)
    lost = _cancel_by_hand(s, "streaming")
    second = [event(service, i) for i in range(200, 400)]
    produce(s, second)  # while the job is away
    events = first + second

    def recovered() -> dict[str, object] | None:
        state = json.loads(state_file.read_text())
        found = flink_deploy.find_job(s, "streaming")
        running = found is not None and found["state"] == "RUNNING" and found["jid"] == state["job_id"] != lost
        return state if running and state.get("recoveries", 0) == recoveries + 1 else None

    state = wait_for(recovered, 180, "the health sensor to bring the job back")
    assert f"/{lost}/chk-" in str(state["restored_from"]), state
    expected = expected_per_minute(events)
    wait_for(lambda: per_minute(s, service) == expected, 240, "exact minute counts after the recovery")
    time.sleep(5)  # a few more checkpoints: nothing arrives twice
    assert per_minute(s, service) == expected
    assert datetime.now(UTC) > max(k[0] for k in expected)
