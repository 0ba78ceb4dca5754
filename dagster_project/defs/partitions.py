"""Day partitions (UTC), the grain of the Iceberg tables' partitioning, of Kappa replays and of Lambda's batch
layer. The last partition is the last complete day: today is still being written by the stream."""

import dagster as dg

from config.settings import Settings


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=settings.dagster.first_day.isoformat(), timezone="UTC")


def day_window_ms(context: dg.AssetExecutionContext) -> tuple[int, int]:
    """[start, end) of the run's partition (or partition range) in epoch milliseconds."""
    window = context.partition_time_window
    return int(window.start.timestamp() * 1000), int(window.end.timestamp() * 1000)
