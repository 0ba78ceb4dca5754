"""The de-duplication of the streaming job alone, for bench/dedup_state.py: random 36-character ids from Flink's
datagen at a fixed rate, each kept once (`ROW_NUMBER() ... = 1` in processing time, as flink_jobs/sql/
unique_events.sql) into a blackhole. Arguments: `rate=<ids/s>` and any Flink option as `key=value` (job-level:
they override the cluster's)."""

from __future__ import annotations

import sys

from pyflink.table import EnvironmentSettings, TableEnvironment


def main(argv: list[str]) -> None:
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    conf.set("pipeline.name", "dedup_state")
    rate = "20000"
    for option in argv:
        key, value = option.split("=", 1)
        if key == "rate":
            rate = value
        else:
            conf.set(key, value)
    t_env.execute_sql(
        "CREATE TABLE ids (id STRING, proc_time AS PROCTIME()) WITH ("
        f"'connector' = 'datagen', 'rows-per-second' = '{int(rate)}', "
        "'fields.id.kind' = 'random', 'fields.id.length' = '36')"
    )
    t_env.execute_sql("CREATE TABLE kept (id STRING) WITH ('connector' = 'blackhole')")
    t_env.execute_sql(
        "INSERT INTO kept SELECT id FROM ("
        "SELECT id, ROW_NUMBER() OVER (PARTITION BY id ORDER BY proc_time) AS delivery FROM ids"
        ") WHERE delivery = 1"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
