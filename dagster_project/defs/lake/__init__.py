"""Lake: the Iceberg tables of the contract (`lakehouse.contract`), Kappa's replay of the streamed windows,
table maintenance, and the checks that the stream keeps the tables fresh with few malformed or late events."""
