-- Lambda's batch layer: speed.user_sessions (SESSION windows per service and user) recomputed from every valid
-- event, gaps and islands: a request more than the gap after the previous one of its service and user starts a
-- session. The stream's rules: touching windows merge (a request exactly one gap later continues the session),
-- session_end is the last request plus the gap. Reads one gap before the range (does the first request of a
-- user start a session?) and var('lookaround_minutes') after it (a session crossing the range's end finishes).
{%- set batch_start, batch_end = batch_range() %}
{%- set gap = var('session_gap_minutes') | int %}
{{ config(
    materialized='external',
    plugin='lake',
    iceberg_table='batch.user_sessions',
    replace_column='session_start',
    replace_from=batch_start,
    replace_until=batch_end,
) }}

with events as (

    select *, service || '/' || user_key as session_key
    from {{ ref('stg_http_events') }}
    where {{ in_batch_range('event_time', back_minutes=gap, ahead_minutes=var('lookaround_minutes')) }}

),

session_starts as (

    select
        *,
        case
            when lag(event_time) over by_user is null then 1
            when event_time > lag(event_time) over by_user + to_minutes({{ gap }}) then 1
            else 0
        end as starts_session

    from events
    window by_user as (partition by session_key order by event_time, event_id)

),

numbered as (

    select
        *,
        sum(starts_session) over (
            partition by session_key order by event_time, event_id rows unbounded preceding
        ) as session_number

    from session_starts

),

sessions as (

    select
        min(event_time) as session_start,
        max(event_time) + to_minutes({{ gap }}) as session_end,
        any_value(service) as service,
        any_value(user_key) as user_key,
        max(user_id) as user_id,
        max(event_time) as last_request_at,
        count(distinct event_id) as request_count,
        count(distinct case when is_server_error then event_id end) as error_count,
        count(distinct route) as distinct_routes,
        list_sort(list(distinct route)) as routes

    from numbered
    group by session_key, session_number

)

select * from sessions
where {{ in_batch_range('session_start') }}
