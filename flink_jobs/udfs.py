"""Python UDFs of the SQL job, over the rules of flink_jobs/user_agent.py, and the Python execution mode of every job.

    device_class(user_agent) -> STRING   a scalar Python UDF (bench/udf.py; the streaming job runs the same rules
                                         as built-in REGEXPs, flink_jobs/user_agent.py)

It runs in a separate Python worker process (`python.execution-mode: process`, Flink's default: rows cross
to Python and back in batches over gRPC, Apache Beam's Fn API) or inside the TaskManager's JVM (`thread`,
PEMJA: no serialisation, no extra process). `flink.python_execution_mode` picks one; bench/udf.py
compares both with the built-in regex and a vectorised (pandas) UDF on the same query. The pandas and
`is_bot` variants exist for that comparison: production SQL uses the built-in REGEXP for the bot flag.
"""

from __future__ import annotations

import sysconfig
from typing import TYPE_CHECKING, Any

from flink_jobs import user_agent

if TYPE_CHECKING:
    from pyflink.table import TableEnvironment

PYTHON_EXECUTION_MODES = ("process", "thread")


def _device_class_pandas(user_agents: Any) -> Any:
    return user_agents.map(user_agent.device_class, na_action=None)


def _is_bot_pandas(user_agents: Any) -> Any:
    return user_agents.map(user_agent.is_bot, na_action=None)


def use_execution_mode(t_env: TableEnvironment, execution_mode: str) -> None:
    """Run the job's Python functions (UDFs, DataStream functions) in `execution_mode`: process | thread."""
    if execution_mode not in PYTHON_EXECUTION_MODES:
        raise ValueError(f"python execution mode {execution_mode!r} is not one of {', '.join(PYTHON_EXECUTION_MODES)}")
    conf = t_env.get_config()
    conf.set("python.execution-mode", execution_mode)
    if execution_mode == "thread":
        # the interpreter embedded in the TaskManager starts from the base Python, not the Flink virtual
        # environment: give it the environment's packages (pyflink, pemja, ...). The client runs from the same
        # environment as the cluster's workers (the deployer's -pyexec), so its site-packages is theirs.
        conf.set("python.pythonpath", sysconfig.get_paths()["purelib"])


def register(t_env: TableEnvironment, *, execution_mode: str, variants: bool = False) -> None:
    """Register `device_class` (and with `variants` the bench's `is_bot_py`, `device_class_pandas`,
    `is_bot_pandas`) as temporary system functions, running in `execution_mode`."""
    from pyflink.table import DataTypes
    from pyflink.table.udf import udf

    use_execution_mode(t_env, execution_mode)
    functions = {"device_class": udf(user_agent.device_class, result_type=DataTypes.STRING())}
    if variants:
        functions |= {
            "is_bot_py": udf(user_agent.is_bot, result_type=DataTypes.BOOLEAN()),
            "device_class_pandas": udf(_device_class_pandas, result_type=DataTypes.STRING(), func_type="pandas"),
            "is_bot_pandas": udf(_is_bot_pandas, result_type=DataTypes.BOOLEAN(), func_type="pandas"),
        }
    for name, function in functions.items():
        t_env.create_temporary_system_function(name, function)
