"""raw_events: Kafka `http_events` -> validate and parse -> de-duplicate by event_id -> `raw.http_events`.

Each event gets a device class (a Python UDF, flink_jobs/udfs.py) and a bot flag (built-in REGEXP) from its
User-Agent. Messages that are not valid events go to `raw.dead_letter_events` with the reason and their Kafka
partition/offset: nothing is dropped silently. Both inserts run in one statement set, so one job reads the
topic once and both sinks commit on the same checkpoints (exactly-once through Iceberg's Flink sink).
SQL: sql/sources/kafka.sql -> sql/http_events.sql -> sql/raw_events.sql.

Submit with the deployer (`python -m infra deploy raw_events`), which runs
`flink run -py flink_jobs/raw_events.py --config <job.json>` against the cluster's REST address.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from flink_jobs import sql_files, udfs, user_agent
from flink_jobs.environment import create_table_environment, source_params
from flink_jobs.job_config import JobConfig, from_args

if TYPE_CHECKING:
    from pyflink.table import StatementSet

SQL_FILES = ("http_events.sql", "raw_events.sql")  # after sources/<kind>.sql (kafka, or file for tests)


def build(config: JobConfig) -> StatementSet:
    """Register the source and views, return the statement set of the job's inserts (not yet executed)."""
    t_env = create_table_environment(config)
    # the de-duplication remembers each event_id this long (the job's only keyed state)
    t_env.get_config().set("table.exec.state.ttl", f"{config.streaming.dedup_ttl_hours}h")
    udfs.register(t_env, execution_mode=config.python_execution_mode)
    params = source_params(config) | {"bot_pattern": user_agent.BOT_PATTERN.replace("'", "''")}
    return sql_files.statement_set(t_env, [f"sources/{config.source.kind}.sql", *SQL_FILES], params)


def main(argv: list[str] | None = None) -> None:
    config = from_args(argv)
    result = build(config).execute()
    if config.source.bounded:  # a local run over a file: wait for it (a cluster submission is detached)
        result.wait()


if __name__ == "__main__":
    main(sys.argv[1:])
