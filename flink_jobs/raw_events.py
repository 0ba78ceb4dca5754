"""raw_events: Kafka `http_events` -> validate and parse -> Iceberg `raw.http_events`.

Messages that are not valid events go to `raw.dead_letter_events` with the reason and their Kafka
partition/offset: nothing is dropped silently. Both inserts run in one statement set, so one job reads the
topic once and both sinks commit on the same checkpoints (exactly-once through Iceberg's Flink sink).

Submit with the deployer (`python -m infra deploy raw_events`), which runs
`flink run -py flink_jobs/raw_events.py --config <job.json>` against the cluster's REST address.
"""

from __future__ import annotations

import sys

from flink_jobs import sql_files
from flink_jobs.environment import create_table_environment, kafka_source_options
from flink_jobs.job_config import JobConfig, from_args


def build(config: JobConfig) -> object:
    """Register the source and views, return the statement set of the job's inserts (not yet executed)."""
    t_env = create_table_environment(config)
    params = {
        "catalog": config.iceberg.catalog_name,
        "kafka_source_options": sql_files.with_options(kafka_source_options(config.kafka)),
    }
    statement_set = t_env.create_statement_set()
    for statement in sql_files.load("raw_events.sql", params):
        if statement.lstrip().upper().startswith("INSERT"):
            statement_set.add_insert_sql(statement)
        else:
            t_env.execute_sql(statement)
    return statement_set


def main(argv: list[str] | None = None) -> None:
    config = from_args(argv)
    statement_set = build(config)
    statement_set.execute()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(sys.argv[1:])
