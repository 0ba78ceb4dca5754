"""UDF benchmark (issue 5): what a Python UDF costs next to Flink's built-in functions, on the same query.

Query: read N messages from a file, `SELECT event_id, <expression>(user_agent)`, write to a blackhole sink, on a
local mini-cluster at parallelism 1 (bench/udf_job.py). Variants of the bot flag, one result:
- built-in: `REGEXP(user_agent, BOT_PATTERN)` (what streaming_sql runs);
- Python scalar UDF `is_bot_py`, in `process` mode (a Python worker process, rows over gRPC) and in `thread`
  mode (PEMJA, the interpreter inside the TaskManager's JVM);
- pandas (vectorised) UDF `is_bot_pandas`, process mode (thread mode does not run pandas UDFs).
And the device class: its rules as built-in REGEXPs in a CASE (flink_jobs/user_agent.py renders them; what
streaming_sql runs), and as a Python UDF in the same three Python modes.
Also `none`: the query without the expression, the cost of reading and parsing alone.

Each variant runs in its own process over three files: a small one (start-up and warm-up, not counted), then
N/4 and N events: events/s = (N - N/4) / (t_N - t_N/4), so the per-job fixed cost cancels out. Ratios are to
the built-in, measured in the same run.

    python -m bench.udf [N]
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from config.settings import REPO_ROOT, load_settings
from infra import install, sandbox

WARM_UP = 5_000
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "python-requests/2.32.3",
    "curl/8.5.0",
]
# name -> (expression over user_agent, execution mode)
VARIANTS: dict[str, tuple[str, str]] = {
    "none": ("user_agent", "process"),
    "is_bot_builtin": ("{{ is_bot }}", "process"),
    "is_bot_python_process": ("is_bot_py(user_agent)", "process"),
    "is_bot_python_thread": ("is_bot_py(user_agent)", "thread"),
    "is_bot_pandas_process": ("is_bot_pandas(user_agent)", "process"),
    "device_class_builtin": ("{{ device_class }}", "process"),
    "device_class_python_process": ("device_class(user_agent)", "process"),
    "device_class_python_thread": ("device_class(user_agent)", "thread"),
    "device_class_pandas_process": ("device_class_pandas(user_agent)", "process"),
}


def _write_events(path: Path, count: int, rng: random.Random) -> None:
    with path.open("w") as out:
        for i in range(count):
            event = {
                "event_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                "event_time": f"2026-11-25T10:{i // 60_000 % 60:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}Z",
                "service": "shop",
                "route": "/products/{product_id}",
                "user_agent": rng.choice(USER_AGENTS),
            }
            out.write(json.dumps(event) + "\n")


def _run_variant(python: Path, expression: str, mode: str, files: list[Path]) -> list[float]:
    proc = subprocess.run(
        [str(python), "-m", "bench.udf_job", expression, mode, *map(str, files)],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("[")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"bench.udf_job {expression} ({mode}) failed:\n{proc.stderr[-3000:]}")
    times: list[float] = json.loads(lines[-1])
    return times


def run(events: int = 800_000) -> dict[str, Any]:
    settings = load_settings()
    install.ensure_flink_venv(settings)
    python = install.flink_python(settings)
    folder = sandbox.scratch_var_dir("bench-udf-")
    try:
        rng = random.Random(7)
        sizes = (WARM_UP, events // 4, events)
        files = [folder / f"events-{size}.jsonl" for size in sizes]
        for size, file in zip(sizes, files, strict=True):
            _write_events(file, size, rng)
        results: dict[str, Any] = {}
        for name, (expression, mode) in VARIANTS.items():
            _, quarter_seconds, full_seconds = _run_variant(python, expression, mode, files)
            results[name] = {
                "events_per_second": round((events - events // 4) / (full_seconds - quarter_seconds)),
                "seconds": [round(quarter_seconds, 2), round(full_seconds, 2)],
            }
            print(f"udf bench {name}: {results[name]}", file=sys.stderr)
        builtin = results["is_bot_builtin"]["events_per_second"]
        for result in results.values():
            result["ratio_to_builtin"] = round(result["events_per_second"] / builtin, 3)
        return {"events": events, "parallelism": 1, "variants": results}
    finally:
        shutil.rmtree(folder)


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 800_000
    print(json.dumps(run(events), indent=2))


if __name__ == "__main__":
    main()
