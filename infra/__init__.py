"""How each service is fetched, configured, started and stopped: Kafka, Flink, the Iceberg catalog, Dagster,
the demo app. `python -m infra up|down|status` is what `make up|down|status` runs."""
