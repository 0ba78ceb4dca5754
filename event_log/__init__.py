"""Kafka, the event log: the topic the interceptor appends to and the Flink jobs read, seen from Python."""
