"""How dbt is run (lakehouse/dbt_runner.py): the pipeline's settings reach the dbt project as vars."""

from __future__ import annotations

import json

import pytest
import yaml

from config.settings import ConfigError, load_settings
from lakehouse import dbt_runner


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("PIPELINE_"):
            monkeypatch.delenv(key)


def test_the_projects_var_defaults_are_the_pipelines_defaults() -> None:
    """A plain `dbt build` in dbt/ (no `python -m infra dbt`) computes the windows pipeline.yaml's stream does."""
    project = yaml.safe_load((dbt_runner.DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    defaults = dbt_runner.dbt_vars(load_settings())
    assert {k: project["vars"][k] for k in defaults} == defaults


def test_command_line_vars_are_merged_over_the_pipelines() -> None:
    settings = load_settings(pipeline={"mode": "lambda"}, streaming={"session_gap_minutes": 12})
    args = ["build", "--vars", "{batch_start: 2026-11-24, session_gap_minutes: 5}", "-s", "x"]
    cmd = dbt_runner.command(settings, args)
    given = json.loads(cmd[cmd.index("--vars") + 1])
    assert cmd[1:2] == ["build"] and cmd.count("--vars") == 1 and "-s" in cmd
    assert given["pipeline_mode"] == "lambda"
    assert given["session_gap_minutes"] == 5  # the command line wins
    assert given["batch_start"] == "2026-11-24"
    assert given["funnel_routes"] == ["/cart/items", "/checkout", "/payments"]


def test_vars_that_are_not_a_mapping_are_refused() -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        dbt_runner.split_vars(["build", "--vars=[1, 2]"])


def test_dbt_runs_on_one_duckdb_file_take_turns(tmp_path):
    """A second run waits while the first holds the file, and goes on when it is done."""
    import threading

    env = {"DBT_DUCKDB_PATH": str(tmp_path / "lake.duckdb")}
    entered = threading.Event()

    def second() -> None:
        with dbt_runner.duckdb_turn(env):
            entered.set()

    with dbt_runner.duckdb_turn(env):
        waiting = threading.Thread(target=second)
        waiting.start()
        assert not entered.wait(0.5)
    assert entered.wait(5)
    waiting.join()
