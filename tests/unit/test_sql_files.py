from __future__ import annotations

import pytest

from flink_jobs import JOBS, sql_files


def test_placeholders_in_comments_are_not_rendered():
    text = "-- uses {{ options }}\nCREATE TABLE t (a INT) WITH ({{ options }});\nSELECT 1;\n"
    out = sql_files.statements(sql_files.render(sql_files.strip_comments(text), {"options": "'x' = '1',\n'y' = '2'"}))
    assert out == ["CREATE TABLE t (a INT) WITH ('x' = '1',\n'y' = '2')", "SELECT 1"]


def test_missing_placeholder_is_an_error():
    with pytest.raises(KeyError, match="catalog"):
        sql_files.render("INSERT INTO {{ catalog }}.t SELECT 1", {})


def test_with_options_quotes():
    assert sql_files.with_options({"a": "it's"}) == "'a' = 'it''s'"


def test_raw_events_sql_has_both_sinks():
    params = {"catalog": "lake", "device_class": "'desktop'"}
    statements = sql_files.load("raw_events.sql", params)
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert [s.splitlines()[0] for s in inserts] == [
        "INSERT INTO lake.`raw`.http_events",
        "INSERT INTO lake.`raw`.dead_letter_events",
    ]
    assert all(job.entry.exists() for job in JOBS.values())
