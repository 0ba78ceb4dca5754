-- Lambda's batch layer, first step: every valid event of the batch range, once, with only the columns the batch
-- models read. The range is widened by the longest reach of a batch model (sessions and funnels read
-- var('lookaround_minutes') around it). raw.http_events may hold an event twice (a re-delivery later than the
-- stream's de-duplication remembers); one GROUP BY here, which DuckDB spills to disk when it must, lets every
-- batch model count rows: distinct aggregates per window keep every event id in memory, and a day at 1,000
-- events/s did not fit DuckDB's memory limit with them.
{%- set reach = [var('lookaround_minutes') | int, var('session_gap_minutes') | int, 5] | max %}
{{ config(materialized='table') }}

with events as (

    select * from {{ ref('stg_http_events') }}
    where {{ in_batch_range('event_time', back_minutes=reach, ahead_minutes=reach) }}

),

unique_events as (

    select
        event_id,
        any_value(event_time) as event_time,
        any_value(service) as service,
        any_value(route) as route,
        any_value(status_code) as status_code,
        any_value(duration_ms) as duration_ms,
        any_value(user_id) as user_id,
        any_value(user_key) as user_key,
        any_value(is_server_error) as is_server_error

    from events
    group by event_id

)

select * from unique_events
