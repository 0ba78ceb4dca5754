"""`python -m infra maintain` on real pyiceberg tables in a SQLite catalog: exact rows after compaction and the
collapse of re-firings, today left alone, a dry run that changes nothing, snapshot expiry that deletes only
unreferenced files, and a writer committing between the read and the overwrite of a partition."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pytest
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.table import Table

from config.settings import Settings, load_settings
from infra import cli
from lakehouse import contract, iceberg, maintenance
from lakehouse.contract import HTTP_EVENTS, REQUESTS_PER_ROUTE_MINUTE_FIRINGS, TableSpec
from lakehouse.maintenance import Options

FIRINGS = REQUESTS_PER_ROUTE_MINUTE_FIRINGS
TODAY = datetime.now(UTC).date()
DAY0, DAY1, DAY2 = TODAY - timedelta(days=3), TODAY - timedelta(days=2), TODAY - timedelta(days=1)
FAST = Options(retry_wait_seconds=0)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("PIPELINE_"):
            monkeypatch.delenv(key)


@dataclass
class Lake:
    settings: Settings

    def table(self, spec: TableSpec) -> Table:
        """A fresh Table object from its own catalog connection: another writer, as far as pyiceberg knows."""
        return iceberg.load(self.settings).load_table(spec.identifier)

    def append(self, spec: TableSpec, rows: list[dict[str, Any]]) -> None:
        table = self.table(spec)
        table.append(pa.Table.from_pylist(rows, schema=table.schema().as_arrow()))

    def files(self, spec: TableSpec, day: date) -> set[str]:
        column = spec.day_partition_on
        assert column is not None
        scan = self.table(spec).scan(row_filter=maintenance.day_filter(column, day))
        return {task.file.file_path for task in scan.plan_files()}

    def firings(self, day: date | None = None) -> list[tuple[Any, ...]]:
        """(day, minute, route, firing, request_count) of every row, sorted."""
        rows = self.table(FIRINGS).scan().to_arrow().to_pylist()
        out = [
            (r["window_start"].date(), r["window_start"].minute, r["route"], r["firing"], r["request_count"])
            for r in rows
        ]
        return sorted(r for r in out if day is None or r[0] == day)

    def event_ids(self) -> list[str]:
        return sorted(self.table(HTTP_EVENTS).scan(selected_fields=("event_id",)).to_arrow()["event_id"].to_pylist())

    def maintain(self, options: Options = FAST, **kwargs: Any) -> dict[str, Any]:
        return maintenance.run(self.settings, options, [HTTP_EVENTS, FIRINGS], **kwargs)["tables"]


def firing(day: date, minute: int, route: str, firing: int, count: int) -> dict[str, Any]:
    start = datetime(day.year, day.month, day.day, 0, minute, tzinfo=UTC)
    return {
        "window_start": start,
        "window_end": start + timedelta(minutes=1),
        "service": "shop",
        "route": route,
        "request_count": count,
        "error_count": 0,
        "firing": firing,
        "fired_at": start + timedelta(minutes=1, seconds=firing),
        "watermark": start + timedelta(minutes=1),
    }


def event(event_id: str, day: date, second: int) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_time": datetime(day.year, day.month, day.day, 12, 0, second, tzinfo=UTC),
        "service": "shop",
        "method": "GET",
        "route": "/products",
        "path": "/products",
        "status_code": 200,
        "duration_ms": 1.5,
    }


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[Lake]:
    settings = load_settings(
        paths={"var_dir": str(tmp_path / "var")},
        iceberg={"uri": f"jdbc:sqlite:{tmp_path}/catalog.db", "warehouse": (tmp_path / "warehouse").as_uri()},
    )
    iceberg.ensure_tables(settings, [HTTP_EVENTS, FIRINGS])
    lake = Lake(settings)
    # window firings: one append is one file per day partition
    lake.append(FIRINGS, [firing(DAY0, 0, "/a", 0, 1), firing(DAY0, 0, "/a", 1, 2)])  # 1 file, re-fired
    lake.append(FIRINGS, [firing(DAY1, 0, "/a", 0, 1), firing(DAY1, 0, "/b", 0, 4), firing(DAY1, 1, "/a", 0, 7)])
    lake.append(FIRINGS, [firing(DAY1, 0, "/a", 1, 2)])
    lake.append(FIRINGS, [firing(DAY1, 0, "/a", 2, 3), firing(DAY1, 0, "/b", 1, 5)])
    lake.append(FIRINGS, [firing(DAY2, 0, "/a", 0, 1), firing(DAY2, 5, "/a", 0, 1)])
    lake.append(FIRINGS, [firing(DAY2, 5, "/a", 1, 2)])
    lake.append(FIRINGS, [firing(TODAY, 0, "/a", 0, 1)])
    lake.append(FIRINGS, [firing(TODAY, 0, "/a", 1, 2)])
    # raw events: three files on DAY1, one on DAY2 (nothing to compact), two today
    for i in range(3):
        lake.append(HTTP_EVENTS, [event(f"d1-{i}-a", DAY1, i), event(f"d1-{i}-b", DAY1, 10 + i)])
    lake.append(HTTP_EVENTS, [event("d2-0", DAY2, 0)])
    lake.append(HTTP_EVENTS, [event("t-0", TODAY, 0)])
    lake.append(HTTP_EVENTS, [event("t-1", TODAY, 1)])
    yield lake


ALL_EVENTS = sorted([f"d1-{i}-{s}" for i in range(3) for s in "ab"] + ["d2-0", "t-0", "t-1"])
LATEST_PAST = [
    (DAY0, 0, "/a", 1, 2),
    (DAY1, 0, "/a", 2, 3),
    (DAY1, 0, "/b", 1, 5),
    (DAY1, 1, "/a", 0, 7),
    (DAY2, 0, "/a", 0, 1),
    (DAY2, 5, "/a", 1, 2),
]
TODAY_FIRINGS = [(TODAY, 0, "/a", 0, 1), (TODAY, 0, "/a", 1, 2)]


def test_rewrites_past_partitions_into_one_file_keeping_the_latest_firing(lake: Lake):
    today_files = lake.files(FIRINGS, TODAY), lake.files(HTTP_EVENTS, TODAY)
    day2_event_files = lake.files(HTTP_EVENTS, DAY2)

    summary = lake.maintain()

    assert lake.firings() == sorted(LATEST_PAST + TODAY_FIRINGS)
    assert lake.event_ids() == ALL_EVENTS
    for day in (DAY0, DAY1, DAY2):
        assert len(lake.files(FIRINGS, day)) == 1
    assert len(lake.files(HTTP_EVENTS, DAY1)) == 1
    # today is still being written: left alone; a single-file partition without re-firings: not rewritten
    assert (lake.files(FIRINGS, TODAY), lake.files(HTTP_EVENTS, TODAY)) == today_files
    assert lake.files(HTTP_EVENTS, DAY2) == day2_event_files

    fir = summary[FIRINGS.identifier]
    assert fir["status"] == "ok"
    assert fir["days"] == [DAY0.isoformat(), DAY1.isoformat(), DAY2.isoformat()]
    assert (fir["partitions_rewritten"], fir["partitions_left_for_later"]) == (3, 1)
    assert (fir["files_before"], fir["files_rewritten"], fir["files_after"]) == (8, 6, 5)
    assert (fir["rows_before"], fir["rows_after"], fir["refirings_collapsed"]) == (13, 8, 5)
    assert (fir["conflicts"], fir["snapshots_expired"]) == (0, 0)  # every snapshot is younger than 24 h
    ev = summary[HTTP_EVENTS.identifier]
    assert ev["days"] == [DAY1.isoformat()]
    assert (ev["files_before"], ev["files_after"], ev["rows_before"], ev["rows_after"]) == (6, 4, 9, 9)
    assert ev["refirings_collapsed"] == 0

    # a second run finds nothing to do
    again = lake.maintain()
    assert again[FIRINGS.identifier]["partitions_rewritten"] == 0
    assert again[HTTP_EVENTS.identifier]["partitions_rewritten"] == 0


def test_include_today_rewrites_todays_partition_too(lake: Lake):
    summary = lake.maintain(Options(include_today=True, retry_wait_seconds=0))
    assert lake.firings() == sorted([*LATEST_PAST, (TODAY, 0, "/a", 1, 2)])
    assert lake.event_ids() == ALL_EVENTS
    assert len(lake.files(HTTP_EVENTS, TODAY)) == 1
    assert summary[FIRINGS.identifier]["partitions_left_for_later"] == 0


def test_min_files_threshold(lake: Lake):
    lake.maintain(Options(min_files=4, retry_wait_seconds=0))
    assert len(lake.files(HTTP_EVENTS, DAY1)) == 3  # 3 files < 4: left alone
    assert len(lake.files(FIRINGS, DAY1)) == 1  # re-fired: rewritten whatever its file count
    assert lake.firings() == sorted(LATEST_PAST + TODAY_FIRINGS)


def test_dry_run_changes_nothing_and_predicts_the_real_run(lake: Lake):
    before = {spec.identifier: lake.table(spec).metadata_location for spec in (HTTP_EVENTS, FIRINGS)}
    rows = lake.firings()

    dry = lake.maintain(Options(dry_run=True, retain_hours=0, retry_wait_seconds=0))

    assert {spec.identifier: lake.table(spec).metadata_location for spec in (HTTP_EVENTS, FIRINGS)} == before
    assert lake.firings() == rows
    real = lake.maintain()
    keys = ("partitions_rewritten", "files_rewritten", "files_after", "rows_after", "refirings_collapsed", "days")
    for identifier in before:
        assert {k: dry[identifier][k] for k in keys} == {k: real[identifier][k] for k in keys}
    assert dry[FIRINGS.identifier]["snapshots_expired"] == 7  # 8 appends, the current one kept


def _local(path: str) -> Path:
    return Path(urlparse(path).path)


def test_expiry_drops_old_snapshots_and_only_the_files_no_kept_snapshot_needs(lake: Lake):
    old_day1_files = lake.files(FIRINGS, DAY1) | lake.files(HTTP_EVENTS, DAY1)
    assert all(_local(p).exists() for p in old_day1_files)
    first = lake.maintain()  # compaction; every snapshot is younger than the 24 h retention
    assert first[FIRINGS.identifier]["snapshots_expired"] == 0
    assert all(_local(p).exists() for p in old_day1_files)  # still needed for time travel

    later = datetime.now(UTC) + timedelta(seconds=1)
    summary = lake.maintain(Options(retain_hours=0, retry_wait_seconds=0), now=later)

    for spec in (FIRINGS, HTTP_EVENTS):
        table = lake.table(spec)
        assert len(table.snapshots()) == 1
        assert summary[spec.identifier]["snapshots_expired"] > 0
        assert summary[spec.identifier]["files_deleted"] > 0
        snapshot = table.current_snapshot()
        assert snapshot is not None and _local(snapshot.manifest_list).exists()
        for task in table.scan().plan_files():
            assert _local(task.file.file_path).exists()
    assert not any(_local(p).exists() for p in old_day1_files)
    assert lake.firings() == sorted(LATEST_PAST + TODAY_FIRINGS)
    assert lake.event_ids() == ALL_EVENTS


def test_expiry_of_an_append_only_history_keeps_every_data_file(lake: Lake):
    table = lake.table(HTTP_EVENTS)
    data_files = {task.file.file_path for task in table.scan().plan_files()}
    old_lists = {s.manifest_list for s in table.snapshots() if s.snapshot_id != table.metadata.current_snapshot_id}

    options = Options(min_files=100, retain_hours=0, retry_wait_seconds=0)
    summary = maintenance.run(lake.settings, options, [HTTP_EVENTS], now=datetime.now(UTC) + timedelta(seconds=1))

    ev = summary["tables"][HTTP_EVENTS.identifier]
    assert (ev["partitions_rewritten"], ev["snapshots_expired"]) == (0, 5)
    assert ev["files_deleted"] == 5  # their manifest lists; the manifests and data files are all still live
    assert len(lake.table(HTTP_EVENTS).snapshots()) == 1
    assert all(_local(p).exists() for p in data_files)
    assert not any(_local(p).exists() for p in old_lists)
    assert lake.event_ids() == ALL_EVENTS


def test_expiry_keeps_the_last_commit_a_stopped_flink_job_restores_from(lake: Lake):
    """Iceberg's Flink committer finds what its checkpoint already committed by walking back to its own last
    commit: that snapshot, and every later one, outlive the retention (up to the topic's retention)."""
    table = lake.table(HTTP_EVENTS)
    flink = {"flink.job-id": "job-1", "flink.operator-id": "op-1", maintenance.FLINK_CHECKPOINT: "42"}
    table.append(pa.Table.from_pylist([event("f-0", DAY2, 5)], schema=table.schema().as_arrow()), flink)
    flink_commit = table.current_snapshot()
    assert flink_commit is not None
    lake.append(HTTP_EVENTS, [event("f-1", DAY2, 6)])
    lake.append(HTTP_EVENTS, [event("f-2", DAY2, 7)])
    options = Options(min_files=100, retain_hours=0, retry_wait_seconds=0)
    later = datetime.now(UTC) + timedelta(seconds=1)

    ev = maintenance.run(lake.settings, options, [HTTP_EVENTS], now=later)["tables"][HTTP_EVENTS.identifier]

    snapshots = lake.table(HTTP_EVENTS).snapshots()
    assert snapshots[0].snapshot_id == flink_commit.snapshot_id and len(snapshots) == 3
    assert (ev["snapshots_expired"], ev["snapshots_kept_for_flink"]) == (6, 2)
    # a job stopped for longer than the topic's retention cannot resume from its offsets anyway
    much_later = later + timedelta(hours=lake.settings.kafka.retention_hours + 1)
    ev = maintenance.run(lake.settings, options, [HTTP_EVENTS], now=much_later)["tables"][HTTP_EVENTS.identifier]
    assert (ev["snapshots_expired"], ev["snapshots_kept_for_flink"]) == (2, 0)
    assert len(lake.table(HTTP_EVENTS).snapshots()) == 1
    assert lake.event_ids() == sorted([*ALL_EVENTS, "f-0", "f-1", "f-2"])


def test_pyiceberg_refuses_an_overwrite_based_on_a_stale_read(lake: Lake):
    """What the retry relies on: pyiceberg's own conflict check (serializable isolation)."""
    row_filter = maintenance.day_filter("window_start", DAY1)
    mine = lake.table(FIRINGS)
    data = mine.scan(row_filter=row_filter).to_arrow()
    lake.append(FIRINGS, [firing(DAY1, 0, "/a", 3, 9)])  # another writer, same partition, after my read

    with pytest.raises((ValidationException, CommitFailedException)), mine.transaction() as tx:
        tx.overwrite(data, overwrite_filter=row_filter)

    assert (DAY1, 0, "/a", 3, 9) in lake.firings()
    assert len(lake.firings(DAY1)) == data.num_rows + 1

    # a concurrent commit into another partition does not conflict: pyiceberg rebases, both are kept
    mine = lake.table(FIRINGS)
    data = mine.scan(row_filter=row_filter).to_arrow()
    lake.append(FIRINGS, [firing(DAY2, 9, "/c", 0, 1)])
    with mine.transaction() as tx:
        tx.overwrite(data, overwrite_filter=row_filter)
    assert (DAY2, 9, "/c", 0, 1) in lake.firings()
    assert len(lake.firings(DAY1)) == data.num_rows


def test_a_commit_between_read_and_overwrite_is_retried_and_nothing_is_lost(lake: Lake):
    def concurrent_writer(spec: TableSpec, day: date, attempt: int) -> None:
        if spec is FIRINGS and day == DAY1 and attempt == 1:
            lake.append(FIRINGS, [firing(DAY1, 0, "/a", 3, 9), firing(DAY1, 2, "/new", 0, 1)])
        if spec is FIRINGS and day == DAY2 and attempt == 1:
            lake.append(FIRINGS, [firing(TODAY, 7, "/today", 0, 1)])  # another partition: no conflict

    summary = lake.maintain(before_commit=concurrent_writer)

    fir = summary[FIRINGS.identifier]
    assert (fir["status"], fir["conflicts"], fir["partitions_rewritten"]) == ("ok", 1, 3)
    expected_day1 = [(DAY1, 0, "/a", 3, 9), (DAY1, 0, "/b", 1, 5), (DAY1, 1, "/a", 0, 7), (DAY1, 2, "/new", 0, 1)]
    assert lake.firings(DAY1) == expected_day1
    assert len(lake.files(FIRINGS, DAY1)) == 1
    assert lake.firings(TODAY) == sorted([*TODAY_FIRINGS, (TODAY, 7, "/today", 0, 1)])
    assert lake.firings(DAY2) == [(DAY2, 0, "/a", 0, 1), (DAY2, 5, "/a", 1, 2)]


def test_a_partition_that_keeps_conflicting_is_given_up_untouched(lake: Lake):
    appended = []

    def writer_every_attempt(spec: TableSpec, day: date, attempt: int) -> None:
        if spec is HTTP_EVENTS:
            appended.append(f"late-{attempt}")
            lake.append(HTTP_EVENTS, [event(appended[-1], day, 30 + attempt)])

    summary = lake.maintain(Options(attempts=2, retry_wait_seconds=0), before_commit=writer_every_attempt)

    ev = summary[HTTP_EVENTS.identifier]
    assert (ev["status"], ev["conflicts"], ev["partitions_failed"], ev["partitions_rewritten"]) == ("failed", 2, 1, 0)
    assert lake.event_ids() == sorted(ALL_EVENTS + appended)
    assert len(lake.files(HTTP_EVENTS, DAY1)) == 5  # 3 + the 2 concurrent appends, none replaced
    assert summary[FIRINGS.identifier]["status"] == "ok"


def test_a_table_without_serializable_isolation_is_not_rewritten(lake: Lake):
    with lake.table(HTTP_EVENTS).transaction() as tx:
        tx.set_properties({"write.update.isolation-level": "snapshot"})
    summary = lake.maintain()
    assert summary[HTTP_EVENTS.identifier]["status"] == "failed"
    assert len(lake.files(HTTP_EVENTS, DAY1)) == 3
    assert lake.event_ids() == ALL_EVENTS


def test_a_missing_table_is_reported(lake: Lake):
    summary = maintenance.run(lake.settings, FAST, [contract.LATE_EVENTS])
    assert summary["tables"][contract.LATE_EVENTS.identifier]["status"] == "missing"


def test_cli_prints_the_summary_as_json(lake: Lake, monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_PATHS__VAR_DIR", str(lake.settings.var_dir))
    monkeypatch.setenv("PIPELINE_ICEBERG__URI", lake.settings.catalog_jdbc_uri)
    monkeypatch.setenv("PIPELINE_ICEBERG__WAREHOUSE", lake.settings.warehouse)
    rows = lake.firings()

    assert cli.main(["maintain", "--table", FIRINGS.identifier, "--dry-run", "--min-files", "3"]) == 0

    summary = json.loads(capsys.readouterr().out)
    assert summary["dry_run"] is True
    assert summary["options"]["min_files"] == 3
    assert list(summary["tables"]) == [FIRINGS.identifier]
    assert summary["tables"][FIRINGS.identifier]["refirings_collapsed"] == 5
    assert lake.firings() == rows
    with pytest.raises(SystemExit):
        cli.main(["maintain", "--min-files", "0"])


def test_appended_rows_count_the_appends_since_a_time_and_not_the_rewrites(lake: Lake):
    """What the dead-letter and late-rate checks count as arrivals (the snapshots' summaries, no data read)."""
    assert iceberg.appended_rows(lake.table(HTTP_EVENTS), 0) == len(ALL_EVENTS)
    since_ms = int(datetime.now(UTC).timestamp() * 1000) + 1
    while int(datetime.now(UTC).timestamp() * 1000) < since_ms:
        pass
    lake.append(HTTP_EVENTS, [event("t-2", TODAY, 2), event("t-3", TODAY, 3)])
    lake.append(HTTP_EVENTS, [event("t-4", TODAY, 4)])
    assert iceberg.appended_rows(lake.table(HTTP_EVENTS), since_ms) == 3
    report = lake.maintain()
    assert report["raw.http_events"]["partitions_rewritten"] == 1, report  # DAY1's three files became one
    table = lake.table(HTTP_EVENTS)
    assert iceberg.appended_rows(table, since_ms) == 3
    assert iceberg.appended_rows(table, 0) == len(ALL_EVENTS) + 3


def test_count_by_counts_the_rows_matching_a_filter_per_value(lake: Lake):
    """How the late-rate check counts raw.late_events per window (here: raw events per path, one day)."""
    table = lake.table(HTTP_EVENTS)
    assert iceberg.count_by(table, "route", maintenance.day_filter("event_time", DAY1)) == {"/products": 6}
    assert iceberg.count_by(table, "route", maintenance.day_filter("event_time", DAY0)) == {}
