-- Lambda's batch layer: the DataStream 1-minute windows per service and route (speed.requests_per_route_minute,
-- the latest firing of each) recomputed from every valid event, final at once: no firings, no lateness.
{%- set batch_start, batch_end = batch_range() %}
{{ config(
    materialized='external',
    plugin='lake',
    iceberg_table='batch.requests_per_route_minute',
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
        count(*) as request_count,
        count(*) filter (where is_server_error) as error_count

    from events
    group by all

)

select * from per_minute
