"""The lakehouse: the Iceberg tables and everything that reads or keeps them, whichever engine wrote them.

`contract.py` defines every table once; `iceberg.py` opens the catalog and creates the tables; `maintenance.py`
compacts and expires; `duckdb_views.py` reads the lake with SQL; `dbt_runner.py` and `dbt_plugin.py` run the dbt
project over it. It never imports the local stack (`infra/`): the same code serves a catalog and warehouse anywhere.
"""
