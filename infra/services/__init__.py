"""One module per service: how it is configured, started, health-checked and stopped."""
