"""PyFlink jobs: Kafka `http_events` -> Flink -> Iceberg.

The modules here run inside the Flink virtual environment (the client that builds a job graph, and the
cluster's Python workers); they import nothing of the platform's own environment. What a job needs to know
(brokers, catalog, checkpointing) arrives as one JSON file rendered from pipeline.yaml by the deployer
(`infra/services/flink_jobs.py`). SQL lives in `sql/`; Python only where SQL cannot say it.
"""

from __future__ import annotations

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
    replayable: bool = False  # its windows can be recomputed from raw.http_events (a Kappa replay)
    python: bool = False  # it runs Python functions (Python workers, flink.python_execution_mode)

    @property
    def consumer_group(self) -> str:
        """The Kafka consumer group it reads the topic with (its offsets committed on each checkpoint)."""
        return f"flink-{self.name}"

    def source_files(self) -> list[Path]:
        """Everything whose change makes a running job out of date."""
        files = sorted(PACKAGE_DIR.glob("*.py")) + sorted(SQL_DIR.rglob("*.sql"))
        return [f for f in files if f.name != "__init__.py" or f.parent == PACKAGE_DIR]


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
        replayable=True,
        python=True,
    ),
}
