"""Ingest: the Kafka topic every event goes through, as an observed source asset, and how far the Flink jobs'
consumer groups are behind it."""
