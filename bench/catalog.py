"""Catalog benchmark: can the catalog database carry the commit rate of the streaming job?

For each catalog database (a SQLite file, the embedded PostgreSQL) a sandboxed stack runs `streaming` (an
Iceberg sink per table of the stream, raw.* and speed.*, all committing on every checkpoint) with checkpoints
every 2 s, the demo traffic, and a pyiceberg reader polling raw.http_events; the benchmark counts the job's
failures (failed commits restart it) and the reader's look-ups over the same window. JSON out.

    python -m bench.catalog [seconds]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from typing import Any

from config.settings import REPO_ROOT
from infra import sandbox


def _measure(name: str, extra_env: dict[str, str], seconds: float) -> dict[str, Any]:
    var_dir = sandbox.scratch_var_dir(f"bench-catalog-{name}-")
    env = sandbox.environment(var_dir, PIPELINE_FLINK__CHECKPOINT_INTERVAL_SECONDS="2", **extra_env)
    cli = [sys.executable, "-m", "infra"]
    saved = dict(os.environ)
    try:
        subprocess.run([*cli, "up"], cwd=REPO_ROOT, env=env, check=True, capture_output=True)
        os.environ.update({k: v for k, v in env.items() if k.startswith("PIPELINE_")})
        from config.settings import load_settings
        from infra import flink_deploy
        from infra.services import flink
        from lakehouse import iceberg

        settings = load_settings()
        job = flink_deploy.find_job(settings, "streaming")
        assert job is not None
        stop = threading.Event()
        reads = 0

        def reader() -> None:
            nonlocal reads
            catalog = iceberg.load(settings)
            while not stop.is_set():
                catalog.load_table("raw.http_events").current_snapshot()
                reads += 1
                time.sleep(0.2)

        thread = threading.Thread(target=reader)
        thread.start()
        time.sleep(seconds)
        stop.set()
        thread.join()
        history = flink.rest(settings, "GET", f"/jobs/{job['jid']}/exceptions")["exceptionHistory"]["entries"]
        snapshots = len(iceberg.load(settings).load_table("raw.http_events").snapshots())
        return {
            "seconds": seconds,
            "job_failures": len(history),
            "failure_causes": sorted({e["exceptionName"].rsplit(".", 1)[-1] for e in history}),
            "reader_lookups": reads,
            "snapshots": snapshots,
        }
    finally:
        os.environ.clear()
        os.environ.update(saved)
        subprocess.run([*cli, "down"], cwd=REPO_ROOT, env=env, capture_output=True)
        shutil.rmtree(var_dir, ignore_errors=True)


def run(seconds: float = 150.0) -> dict[str, Any]:
    sqlite = _measure("sqlite", {"PIPELINE_ICEBERG__URI": "jdbc:sqlite:var/tmp/bench-catalog.db"}, seconds)
    for suffix in ("", "-wal", "-shm"):
        (REPO_ROOT / "var" / "tmp" / f"bench-catalog.db{suffix}").unlink(missing_ok=True)
    postgres = _measure("postgres", {}, seconds)
    return {"sqlite_file": sqlite, "postgresql": postgres, "goal_job_failures": 0}


if __name__ == "__main__":
    print(json.dumps(run(float(sys.argv[1]) if len(sys.argv) > 1 else 150.0), indent=2))
