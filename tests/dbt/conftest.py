"""The dbt project over a lake the real jobs filled: the Flink jobs run on a local mini-cluster over a day of
generated traffic (the fixtures of tests/flink/), then dbt reads the Iceberg tables through DuckDB."""

from __future__ import annotations

from tests.flink.conftest import catalog_settings, flink_sandbox  # noqa: F401 (fixtures)
