"""The control plane: Dagster assets for the topic, the Flink jobs and the Iceberg tables."""
