"""De-duplication state benchmark: what keeping each event_id once costs per event as the state grows, with
Flink's default RocksDB levels and with the platform's (infra/services/flink.py), side by side in one run.

The streaming job remembers every event_id for `streaming.dedup_horizon_minutes` in RocksDB. Each checkpoint
flushes the ids that arrived since the last one as a small file of random keys, which compaction merges into
the levels below. bench/dedup_state_job.py runs that de-duplication alone (datagen ids -> ROW_NUMBER = 1 ->
blackhole) on a sandboxed Flink cluster with the platform's configuration, twice in turn:
- `flink_default`: the job overrides the level options with Flink's defaults (a 256 MB first level, 64 MB
  files, levels sized from the top);
- `platform`: the cluster's own options.
Each run takes `--ids` ids at `--rate` ids/s with a checkpoint every `--checkpoint-seconds` (20,000/s every 2 s:
40,000 ids per checkpoint, as 4,000 events/s with the platform's 10 s interval). Every `--interval` seconds it
records the ids so far and the TaskManager's CPU per thread (procfs): RocksDB's compaction threads
(`rocksdb:low`), the de-duplication operator's thread, and the rest.

JSON: per variant, the samples and the compaction and total CPU per id over the last half of the run; ratios
platform / flink_default. PNG: compaction µs per id against the ids in the state, both variants.

    python -m bench.dedup_state                        # 8 million ids per variant, about 20 minutes
    python -m bench.dedup_state --ids 4000000 --plot var/tmp/dedup.png
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import stack
from config.settings import REPO_ROOT, Settings
from infra import install
from infra.process import _group_members
from infra.services import flink

JOB_FILE = REPO_ROOT / "bench" / "dedup_state_job.py"
DEFAULT_PLOT = REPO_ROOT / "var" / "bench" / "dedup_state.png"
# Flink's own defaults for the options the platform sets (RocksDBConfigurableOptions)
FLINK_DEFAULT_LEVELS = {
    "state.backend.rocksdb.compaction.level.use-dynamic-size": "false",
    "state.backend.rocksdb.compaction.level.max-size-level-base": "256mb",
    "state.backend.rocksdb.compaction.level.target-file-size-base": "64mb",
}
VARIANTS: dict[str, dict[str, str]] = {"flink_default": FLINK_DEFAULT_LEVELS, "platform": {}}
COMPACTION_THREAD = "rocksdb:low"
DEDUP_THREAD = "Deduplicate"


def _thread_ticks(var_dir: Path) -> Counter[str]:
    """Clock ticks of CPU so far of every thread of the TaskManager's processes, by thread name (its subtask
    index and the like cut off)."""
    leader = stack.service_pids(var_dir).get("flink-taskmanager")
    ticks: Counter[str] = Counter()
    for pid in _group_members(leader or 0):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            except OSError:
                continue
            name = re.split(r"[ \[(]", stat[stat.index("(") + 1 : stat.rindex(")")], maxsplit=1)[0]
            fields = stat.rsplit(")", 1)[1].split()
            ticks[name] += int(fields[11]) + int(fields[12])
    return ticks


def _source_records(settings: Settings, job_id: str) -> int | None:
    job = flink.rest(settings, "GET", f"/jobs/{job_id}")
    source = next((v for v in job["vertices"] if v["name"].startswith("Source")), None)
    if source is None or source["status"] != "RUNNING":
        return None
    metrics = flink.rest(settings, "GET", f"/jobs/{job_id}/vertices/{source['id']}")["subtasks"][0]["metrics"]
    return int(metrics["write-records"])


def _submit(settings: Settings, options: dict[str, str]) -> str:
    python = str(install.flink_python(settings))
    # run from a folder of its own: `flink run -py` puts the file's folder first on sys.path, and bench/ holds a
    # platform.py that would shadow the standard library's
    job_file = settings.var_dir / "tmp" / JOB_FILE.name
    job_file.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(JOB_FILE, job_file)
    argv = [
        "bash", str(install.pyflink_dir(settings) / "bin" / "flink"), "run", "--detached",
        *flink.cli_target(settings), "-py", str(job_file), "-pyclientexec", python, "-pyexec", python,
        *(f"{k}={v}" for k, v in options.items()),
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **flink.flink_env(settings)})
    match = re.search(r"JobID ([0-9a-f]{32})", proc.stdout + proc.stderr)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"flink run failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return match.group(1)


def _run_variant(
    st: stack.Stack, name: str, ids: int, rate: int, checkpoint_seconds: int, interval: float
) -> dict[str, Any]:
    settings = st.settings
    options = {
        "rate": str(rate),
        "execution.checkpointing.interval": f"{checkpoint_seconds}s",
        "table.exec.state.ttl": f"{settings.streaming.dedup_horizon_minutes}min",
        **VARIANTS[name],
    }
    job_id = _submit(settings, options)
    deadline = time.monotonic() + 120
    while (first := _source_records(settings, job_id)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: the job's source did not start")
        time.sleep(1)
    samples: list[dict[str, Any]] = []
    before, count, at = _thread_ticks(st.var_dir), first, time.monotonic()
    while count < ids:
        time.sleep(interval)
        now_ticks, now_count, now = _thread_ticks(st.var_dir), _source_records(settings, job_id), time.monotonic()
        if now_count is None:
            raise RuntimeError(f"{name}: the job stopped running")
        took = now_count - count
        used = {k: now_ticks[k] - before.get(k, 0) for k in now_ticks}
        per_id = 1e6 / os.sysconf("SC_CLK_TCK") / max(took, 1)  # µs of CPU per id, per tick
        samples.append({
            "ids": now_count,
            "ids_per_s": round(took / (now - at)),
            "cpu_us_per_id": round(sum(used.values()) * per_id, 1),
            "compaction_us_per_id": round(used.get(COMPACTION_THREAD, 0) * per_id, 1),
            "dedup_us_per_id": round(used.get(DEDUP_THREAD, 0) * per_id, 1),
        })  # fmt: skip
        print(f"{name}: {json.dumps(samples[-1])}", file=sys.stderr, flush=True)
        before, count, at = now_ticks, now_count, now
    flink.rest(settings, "PATCH", f"/jobs/{job_id}?mode=cancel")
    second_half = [s for s in samples if s["ids"] > ids / 2]

    def mean(key: str) -> float:
        return round(sum(s[key] for s in second_half) / len(second_half), 1)

    return {
        "options": VARIANTS[name] or "the cluster's (infra/services/flink.py)",
        "samples": samples,
        "second_half": {
            "compaction_us_per_id": mean("compaction_us_per_id"),
            "cpu_us_per_id": mean("cpu_us_per_id"),
            "ids_per_s": mean("ids_per_s"),
        },
        "compaction_us_per_id_first_to_last": [samples[0]["compaction_us_per_id"], samples[-1]["compaction_us_per_id"]],
    }


def _plot(variants: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(9, 5))
    for name, result in variants.items():
        samples = result["samples"]
        millions = [s["ids"] / 1e6 for s in samples]
        ax.plot(millions, [s["compaction_us_per_id"] for s in samples], marker="o", label=f"{name}: compaction")
        ax.plot(millions, [s["cpu_us_per_id"] for s in samples], linestyle="--", label=f"{name}: whole TaskManager")
    ax.set_xlabel("ids in the de-duplication state (millions)")
    ax.set_ylabel("CPU µs per id")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("De-duplication: CPU per id as the state grows")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(
    ids: int = 8_000_000, rate: int = 20_000, checkpoint_seconds: int = 2, interval: float = 60.0,
    plot: Path = DEFAULT_PLOT,
) -> dict[str, Any]:  # fmt: skip
    variants: dict[str, dict[str, Any]] = {}
    with stack.sandboxed("dedup-state-", ("flink",)) as st:
        for name in VARIANTS:
            variants[name] = _run_variant(st, name, ids, rate, checkpoint_seconds, interval)
    _plot(variants, plot)
    default, platform = variants["flink_default"]["second_half"], variants["platform"]["second_half"]
    return {
        "ids": ids,
        "rate": rate,
        "checkpoint_seconds": checkpoint_seconds,
        "variants": variants,
        "ratios_platform_to_flink_default": {
            key: round(platform[key] / default[key], 2) for key in ("compaction_us_per_id", "cpu_us_per_id")
        },
        "plot": str(plot),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", type=int, default=8_000_000)
    parser.add_argument("--rate", type=int, default=20_000)
    parser.add_argument("--checkpoint-seconds", type=int, default=2)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    result = run(args.ids, args.rate, args.checkpoint_seconds, args.interval, args.plot)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
