"""Platform benchmark: how long `up` takes (first start on an empty var/, then warm after `down`), how long
`down` takes, and the resident memory of every service at rest (one minute after `up`, and the total every minute
up to five), against the goals of issue 3 (warm up <= 90 s, whole stack < 3 GiB). The stack runs on free ports in
a temporary var/ so it can run beside a developer's own `make up`. Installs are assumed done (`make install`).

    python -m bench.platform
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from config.settings import REPO_ROOT
from infra import sandbox
from infra.process import _group_members

WARM_UP_GOAL_S = 90.0
MEMORY_GOAL_MIB = 3 * 1024.0


def _cli(env: dict[str, str], *args: str) -> float:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "infra", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"infra {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return round(time.monotonic() - started, 1)


def _rss_mib(pgid: int) -> float:
    total_kib = 0
    for pid in _group_members(pgid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return round(total_kib / 1024, 1)


def _memory(var_dir: Path) -> dict[str, float]:
    return {
        pid_file.stem: _rss_mib(json.loads(pid_file.read_text())["pid"])
        for pid_file in sorted((var_dir / "run").glob("*.pid"))
    }


def run(settle_seconds: float = 60.0, later_minutes: int = 5) -> dict[str, Any]:
    var_dir = sandbox.scratch_var_dir("bench-platform-")
    env = sandbox.environment(var_dir)
    try:
        first_up = _cli(env, "up")
        time.sleep(settle_seconds)  # at rest: traffic flowing at its default rate, a few checkpoints done
        memory = _memory(var_dir)
        # the JVMs keep filling their heaps after the first minute: the total read every minute up to `later_minutes`
        by_minute = {1: round(sum(memory.values()), 1)}
        for minute in range(2, later_minutes + 1):
            time.sleep(60)
            by_minute[minute] = round(sum(_memory(var_dir).values()), 1)
        down = _cli(env, "down")
        warm_up = _cli(env, "up")
    finally:
        _cli(env, "down")
        shutil.rmtree(var_dir, ignore_errors=True)
    total = round(sum(memory.values()), 1)
    return {
        "first_up_seconds_empty_var": first_up,
        "warm_up_seconds": warm_up,
        "warm_up_goal_seconds": WARM_UP_GOAL_S,
        "warm_up_ratio_to_goal": round(warm_up / WARM_UP_GOAL_S, 3),
        "down_seconds": down,
        "rss_mib_by_service": memory,
        "rss_mib_total": total,
        "rss_goal_mib": MEMORY_GOAL_MIB,
        "rss_ratio_to_goal": round(total / MEMORY_GOAL_MIB, 3),
        "rss_mib_total_by_minute_after_up": by_minute,
        "rss_ratio_to_goal_at_last_minute": round(by_minute[max(by_minute)] / MEMORY_GOAL_MIB, 3),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
