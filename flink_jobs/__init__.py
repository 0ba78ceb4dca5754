"""PyFlink jobs: Kafka `http_events` -> Flink -> Iceberg.

The modules here run inside the Flink virtual environment (the client that builds a job graph, and the
cluster's Python workers); they import nothing of the platform's own environment. What a job needs to know
(brokers, catalog, checkpointing) arrives as one JSON file rendered from pipeline.yaml by the deployer
(`infra/flink_deploy/`). SQL lives in `sql/`; Python only where SQL cannot say it.

JOBS below is the registry of the jobs, each fact about a job written once: the file `flink run` executes,
the tables it writes (the lake's contract, `lakehouse/contract.py`, finds each table's writer here), the
tables a Kappa replay rewrites, its Kafka consumer group and the files its code version is made of.
`tests/unit/test_registries.py` ties them to the SQL.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SQL_DIR = PACKAGE_DIR / "sql"


@dataclass(frozen=True)
class JobSpec:
    name: str
    entry: Path  # the file `flink run -py` executes
    description: str
    writes: tuple[str, ...] = ()  # the Iceberg tables its stream appends to
    # the tables a Kappa replay recomputes from raw.http_events, each with the column that places a row in the
    # replayed range (the table's day partition column); empty: the job cannot be replayed
    replays: tuple[tuple[str, str], ...] = ()
    python: bool = False  # it runs Python functions (Python workers, flink.python_execution_mode)

    @property
    def replayable(self) -> bool:
        return bool(self.replays)

    @property
    def consumer_group(self) -> str:
        """The Kafka consumer group it reads the topic with (its offsets committed on each checkpoint)."""
        return f"flink-{self.name}"

    def source_files(self) -> list[Path]:
        """The job's own code: the modules of this package its entry imports (transitively) and the SQL files
        they name; a change to any of them makes a running job out of date (its code version)."""
        modules = _import_closure(self.entry)
        text = "\n".join(path.read_text() for path in modules)
        sql = {SQL_DIR / name for name in _SQL_NAME.findall(text) if (SQL_DIR / name).is_file()}
        if "sources/" in text:  # the source is chosen at run time: sources/<kind>.sql
            sql |= set((SQL_DIR / "sources").glob("*.sql"))
        return sorted(modules) + sorted(sql)


_SQL_NAME = re.compile(r"\b((?:sources/)?[a-z_]+\.sql)\b")


def _import_closure(entry: Path) -> set[Path]:
    """`entry` and every module of this package it imports, directly or not (imports inside functions too)."""
    seen: set[Path] = set()
    todo = [entry.resolve()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] != PACKAGE_DIR.name:
                    continue
                todo.append(PACKAGE_DIR / "__init__.py")
                module = PACKAGE_DIR.joinpath(*parts[1:]).with_suffix(".py") if len(parts) > 1 else None
                if module is not None and module.is_file():
                    todo.append(module)
    return seen


JOBS: dict[str, JobSpec] = {
    "streaming": JobSpec(
        name="streaming",
        entry=PACKAGE_DIR / "streaming.py",
        description=(
            "Kafka http_events -> parsed, validated, de-duplicated -> raw.http_events, malformed -> dead letters; "
            "SQL windows (tumble, hop, session, cumulate) and DataStream windows (per minute with allowed lateness, "
            "checkout funnel) -> speed.*; late events -> raw.late_events"
        ),
        writes=(
            "raw.http_events",
            "raw.dead_letter_events",
            "raw.late_events",
            "speed.api_requests_per_minute",
            "speed.api_traffic_sliding_5m",
            "speed.user_sessions",
            "speed.api_daily_running_totals",
            "speed.requests_per_route_minute_firings",
            "speed.checkout_funnels",
        ),
        replays=(
            ("speed.api_requests_per_minute", "window_start"),
            ("speed.api_traffic_sliding_5m", "window_start"),
            ("speed.user_sessions", "session_start"),
            ("speed.api_daily_running_totals", "window_start"),
        ),
        python=True,
    ),
}
