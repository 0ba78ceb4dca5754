"""The two registries, jobs (flink_jobs.JOBS) and tables (lakehouse.contract.TABLES), against each other and
against the code they describe: the jobs' SQL, the dbt project, the files a job's code version is made of."""

from __future__ import annotations

import re

import pytest

from config.settings import REPO_ROOT
from flink_jobs import JOBS, PACKAGE_DIR, SQL_DIR, JobSpec, sql_files
from lakehouse import contract


def _insert_targets(files: list[str]) -> set[str]:
    text = "\n".join(sql_files.strip_comments((SQL_DIR / f).read_text()) for f in files)
    return {
        line.split("}}.", 1)[1].split()[0].replace("`", "") for line in text.splitlines() if line.startswith("INSERT")
    }


def test_the_streaming_jobs_writes_are_the_tables_its_sql_inserts_into():
    from flink_jobs.streaming import SINKS, SQL_FILES

    targets = _insert_targets(list(SQL_FILES))
    targets |= {f"speed.{view}" for view, _ in SINKS}  # the window inserts are built in streaming.py from SINKS
    assert targets == set(JOBS["streaming"].writes)


def test_every_table_has_one_writer_and_every_written_table_is_in_the_contract():
    identifiers = {spec.identifier for spec in contract.TABLES}
    for job in JOBS.values():
        assert set(job.writes) <= identifiers, job.name
    writers = {spec.identifier: spec.writer for spec in contract.TABLES}
    assert {t for t, w in writers.items() if w == "streaming"} == set(JOBS["streaming"].writes)
    batch = {t.identifier for t in contract.BATCH_TABLES}
    assert {t for t, w in writers.items() if w == contract.BATCH_WRITER} == batch
    assert sum(1 for job in JOBS.values() for t in job.writes) == len(contract.STREAMED_TABLES)  # no table twice


def test_a_replay_rewrites_tables_its_job_writes_by_their_day_partition_column():
    for job in JOBS.values():
        for identifier, column in job.replays:
            assert identifier in job.writes
            assert contract.by_identifier(identifier).day_partition_on == column, identifier


def test_each_layer_is_the_namespace_and_each_batch_table_is_a_dbt_batch_model():
    assert {spec.layer for spec in contract.TABLES} == set(contract.LAYERS)
    for spec in contract.BATCH_TABLES:
        assert (REPO_ROOT / "dbt" / "models" / "batch" / f"batch_{spec.name}.sql").is_file(), spec.identifier
    with pytest.raises(LookupError, match=r"raw\.http_events"):
        contract.by_identifier("raw.nope")


def test_a_jobs_code_version_is_made_of_its_own_files():
    streaming = {p.relative_to(PACKAGE_DIR).as_posix() for p in JOBS["streaming"].source_files()}
    # every module the job imports, every SQL file it runs, every source it may read from
    assert {"streaming.py", "datastream_windows.py", "minute_window.py", "udfs.py", "user_agent.py"} <= streaming
    sql_run = set(re.findall(r'"((?:sources/)?[a-z_]+\.sql)"', (PACKAGE_DIR / "streaming.py").read_text()))
    assert {f"sql/{name}" for name in sql_run} <= streaming
    assert {"sql/sources/kafka.sql", "sql/sources/iceberg.sql", "sql/sources/file.sql"} <= streaming
    # a job made of one module: that module, the package's paths, and the SQL it names; nothing else
    alone = JobSpec(name="alone", entry=PACKAGE_DIR / "checkout_funnel.py", description="one module")
    assert [p.relative_to(PACKAGE_DIR).as_posix() for p in alone.source_files()] == ["checkout_funnel.py"]
