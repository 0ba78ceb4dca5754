"""Platform: the stack's own processes (Kafka, PostgreSQL, Flink, Dagster, the demo) as the supervisor keeps
them, their health, and bringing the supervisor back."""
