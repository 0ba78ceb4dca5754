"""One variant of the UDF benchmark, run by the Flink environment's Python (bench/udf.py starts it): a local
mini-cluster reads a file of messages and writes `event_id, <expression over user_agent>` to a blackhole sink.
The same job runs over each file in turn in one process (the first one warms up the JVM and the Python
worker); the seconds of each run go to stdout as one JSON list.

    <flink-venv>/bin/python -m bench.udf_job EXPRESSION MODE FILE [FILE ...]
"""

from __future__ import annotations

import json
import sys
import time

from pyflink.table import EnvironmentSettings, TableEnvironment

from flink_jobs import sql_files, udfs, user_agent


def timed_run(t_env: TableEnvironment, path: str, expression: str, run: int) -> float:
    quoted = path.replace("'", "''")
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE src_{run} (payload STRING) "
        f"WITH ('connector' = 'filesystem', 'path' = '{quoted}', 'format' = 'raw')"
    )
    t_env.execute_sql(f"CREATE TEMPORARY TABLE out_{run} (event_id STRING, v STRING) WITH ('connector' = 'blackhole')")
    t_env.execute_sql(
        f"CREATE TEMPORARY VIEW events_{run} AS SELECT JSON_VALUE(payload, '$.event_id') AS event_id, "
        f"JSON_VALUE(payload, '$.user_agent') AS user_agent, "
        f"LOWER(JSON_VALUE(payload, '$.user_agent')) AS user_agent_lower FROM src_{run}"
    )
    started = time.monotonic()
    t_env.execute_sql(f"INSERT INTO out_{run} SELECT event_id, CAST({expression} AS STRING) FROM events_{run}").wait()
    return time.monotonic() - started


def main(argv: list[str]) -> None:
    expression, mode, *files = argv
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    t_env.get_config().set("parallelism.default", "1")
    udfs.register(t_env, execution_mode=mode, variants=True)
    rules = {
        "is_bot": user_agent.is_bot_sql("user_agent_lower"),
        "device_class": user_agent.device_class_sql("user_agent_lower"),
    }
    rendered = sql_files.render(expression, rules)
    print(json.dumps([timed_run(t_env, path, rendered, run) for run, path in enumerate(files)]))


if __name__ == "__main__":
    main(sys.argv[1:])
