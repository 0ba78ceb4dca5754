"""The Dagster code location: the entry module `definitions`, the definitions of each domain (`defs/`) and the
resources through which they reach the platform's systems (`resources/`)."""
