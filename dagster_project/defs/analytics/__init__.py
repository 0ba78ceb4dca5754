"""Analytics: the dbt project (`dbt/`) over the lake, built on a schedule, and in Lambda its batch layer, a day
partition per run, published into Iceberg batch.*."""
