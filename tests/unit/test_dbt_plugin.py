"""The lake plugin's publishing of a batch model's Parquet file."""

from __future__ import annotations

import pyarrow as pa

from lakehouse.dbt_plugin import without_empty_marker


def test_an_empty_result_publishes_no_rows():
    # dbt-duckdb's `external` materialization writes one row of NULLs when the model selected nothing
    marker = pa.table({"window_start": pa.array([None], pa.timestamp("us", "UTC")), "n": pa.array([None], pa.int64())})
    published = without_empty_marker(marker)
    assert published.num_rows == 0
    assert published.schema == marker.schema


def test_rows_are_published_as_they_are():
    rows = pa.table({"window_start": pa.array([None, 1], pa.int64()), "n": pa.array([None, 2], pa.int64())})
    assert without_empty_marker(rows) == rows
    one = pa.table({"window_start": pa.array([None], pa.int64()), "n": pa.array([3], pa.int64())})
    assert without_empty_marker(one) == one
