-- Lambda's batch layer: speed.api_requests_per_minute recomputed from every valid event of the day range
-- (late ones included), published into the Iceberg table batch.api_requests_per_minute (a day's rows replaced).
{%- set batch_start, batch_end = batch_range() %}
{{ config(
    materialized='external',
    plugin='lake',
    iceberg_table='batch.api_requests_per_minute',
    replace_column='window_start',
    replace_from=batch_start,
    replace_until=batch_end,
) }}

with events as (

    select * from {{ ref('int_batch_events') }}
    where {{ in_batch_range('event_time') }}

),

per_minute as (

    select
        time_bucket(interval 1 minute, event_time) as window_start,
        time_bucket(interval 1 minute, event_time) + interval 1 minute as window_end,
        service,
        route,
        status_code,
        count(*) as request_count,
        count(*) filter (where status_code >= 500) as error_count,
        avg(duration_ms) as avg_duration_ms,
        quantile_cont(duration_ms, 0.5) as p50_duration_ms,
        quantile_cont(duration_ms, 0.95) as p95_duration_ms,
        max(duration_ms) as max_duration_ms

    from events
    group by all

)

select * from per_minute
