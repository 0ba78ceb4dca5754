-- Lambda's batch layer: speed.api_traffic_sliding_5m (HOP 5 minutes sliding by 1 minute) recomputed from every
-- valid event, published into batch.api_traffic_sliding_5m for the windows that start in the day range.
{%- set batch_start, batch_end = batch_range() %}
{{ config(
    materialized='external',
    plugin='lake',
    iceberg_table='batch.api_traffic_sliding_5m',
    replace_column='window_start',
    replace_from=batch_start,
    replace_until=batch_end,
) }}

with events as (

    -- a window starting in the range's last minutes reaches 4 minutes past its end
    select * from {{ ref('int_batch_events') }}
    where {{ in_batch_range('event_time', ahead_minutes=4) }}

),

-- an event falls into the 5 windows that start in the 5 minutes up to its own
windows as (

    select
        events.*,
        time_bucket(interval 1 minute, event_time) - to_minutes(offsets.minutes::integer) as window_start

    from events
    cross join range(5) as offsets(minutes)

),

per_window as (

    select
        window_start,
        window_start + interval 5 minute as window_end,
        service,
        route,
        count(*) as request_count,
        count(*) filter (where is_server_error) as error_count,
        count(*) filter (where is_server_error) / count(*) as error_rate,
        count(*) / 300 as requests_per_second,
        quantile_cont(duration_ms, 0.95) as p95_duration_ms

    from windows
    where {{ in_batch_range('window_start') }}
    group by all

)

select * from per_window
