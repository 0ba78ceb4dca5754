"""The code location's definitions, a package per domain (ingest, streaming, lake, analytics, platform) whose
`definitions.py` gives that domain's Definitions (`build_defs`); the modules beside them hold what the domains
share: asset keys, day partitions, check verdicts and the sensors' bookkeeping."""
