"""The streaming job restored from its checkpoint on a local mini-cluster over a real topic: a late event read
first after the restore is recorded late, not dropped.

Flink does not checkpoint watermarks. A restored job has no watermark until the first new one passes, while its
window operators restore theirs and drop an event behind it without a trace. The first message read after this
restore is such an event: the 10:00 minute closed before the checkpoint (the job's watermark 10:01:25, from the
10:01:30 event, reaches the windows with the next event), and it belongs to 10:00. The split keeps its watermark
in the checkpoint (unique_events.sql), so the event lands in raw.late_events for both minute windows, is kept in
raw.http_events, and counted in no window. Without that, it would be taken as on time and dropped by the restored
windows: in no table but the raw one."""

from __future__ import annotations

import os
import signal
from datetime import datetime
from pathlib import Path

import pytest

from tests.flink.conftest import Lake, Sandbox, create_topic, start_job
from tests.flink.test_windows import at, event
from tests.waiting import wait_for

pytestmark = pytest.mark.slow


def _latest_checkpoint(checkpoints: Path) -> Path | None:
    """The newest completed checkpoint (a `chk-N` folder with its `_metadata`) under `checkpoints`."""
    done = [p.parent for p in checkpoints.glob("*/chk-*/_metadata")]
    return max(done, key=lambda p: int(p.name.removeprefix("chk-")), default=None)


def test_a_late_event_read_first_after_a_restore_is_recorded_late(broker: Sandbox, lake: Lake) -> None:
    settings = broker.settings
    created = create_topic(settings, "restore")
    topic, send = created.name, created.send

    def minute_rows() -> list[tuple[datetime, str, int, int]]:
        rows = lake.rows("speed.api_requests_per_minute")
        return sorted((r["window_start"], r["route"], r["status_code"], r["request_count"]) for r in rows)

    def late_rows() -> list[tuple[str, datetime, str]]:
        rows = lake.rows("raw.late_events")
        return sorted((r["event_id"], r["window_start"], r["window_name"]) for r in rows)

    def raw_ids(expected: set[str]) -> list[str] | None:
        ids = sorted(r["event_id"] for r in lake.rows("raw.http_events", ("event_id",)))
        return ids if expected <= set(ids) else None

    checkpoints = lake.root / "checkpoints"
    keep = {
        "execution.checkpointing.dir": checkpoints.as_uri(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
    }
    send(event("r1", "10:00:05", "/a", 200, "u1", 1))
    send(event("r2", "10:01:30", "/a", 200, "u1", 1))  # the watermark passes 10:01 (10:01:25) ...
    job, log = start_job(lake, topic, "before", keep)
    restored = None
    try:
        # ... once r2 is committed (a checkpoint later, long after that watermark) the next event arrives with it:
        # the windows run on the watermark events arrive with, so the 10:00 minute closes
        wait_for(lambda: raw_ids({"r2"}), 150, f"r2 in raw.http_events (job log: {lake.root / 'before.log'})")
        send(event("r2b", "10:01:31", "/a", 200, "u1", 1))
        # the 10:00 window is committed on a checkpoint whose state has it closed, and the watermark past it
        assert wait_for(minute_rows, 150, f"the 10:00 window (job log: {lake.root / 'before.log'})") == [
            (at("10:00:00"), "/a", 200, 1)
        ]
    finally:
        os.killpg(job.pid, signal.SIGKILL)  # the whole mini-cluster, as a TaskManager dies
        job.wait(30)
        log.close()
    try:
        checkpoint = _latest_checkpoint(checkpoints)
        assert checkpoint is not None, f"no completed checkpoint under {checkpoints}"
        send(event("late", "10:00:50", "/a", 200, "u2", 1))  # the first message after the restore: late
        send(event("r3", "10:01:40", "/a", 200, "u1", 1))
        restored, log = start_job(lake, topic, "after", {**keep, "execution.state-recovery.path": checkpoint.as_uri()})
        expected_late = [
            ("late", at("10:00:00"), "requests_per_route_minute"),
            ("late", at("10:00:00"), "sql_windows"),
        ]
        assert (
            wait_for(
                lambda: late_rows() if len(late_rows()) >= 2 else None,
                150,
                f"the late event in raw.late_events (job log: {lake.root / 'after.log'})",
            )
            == expected_late
        )

        raw = wait_for(lambda: raw_ids({"late", "r3"}), 60, "the events read after the restore in raw.http_events")
        assert raw == ["late", "r1", "r2", "r2b", "r3"]  # each once: the restore read nothing twice
        assert minute_rows() == [(at("10:00:00"), "/a", 200, 1)]  # not counted, not re-emitted
        assert restored.poll() is None, (lake.root / "after.log").read_text()[-3000:]
    finally:
        if restored is not None:
            os.killpg(restored.pid, signal.SIGKILL)
            restored.wait(30)
            log.close()
        created.delete()
