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

    -- only what a session needs: the rows go through two sorts
    select event_time, service, user_key, user_id, route, is_server_error

    from {{ ref('int_batch_events') }}
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
    window by_user as (partition by service, user_key order by event_time)

),

numbered as (

    select
        *,
        -- RANGE (the default frame): requests at the same instant are peers and share their session number,
        -- whichever of them the lag above saw first
        sum(starts_session) over (partition by service, user_key order by event_time) as session_number

    from session_starts

),

-- two plain aggregations, no distinct or list aggregate: over tens of millions of sessions DuckDB must spill
-- them to disk, and those aggregates cannot spill (a day at 1,000 events/s ran out of its memory limit)
session_routes as (

    select
        service,
        user_key,
        session_number,
        route,
        max(user_id) as user_id,
        min(event_time) as first_request_at,
        max(event_time) as last_request_at,
        count(*) as request_count,
        count(*) filter (where is_server_error) as error_count

    from numbered
    group by service, user_key, session_number, route

),

sessions as (

    select
        min(first_request_at) as session_start,
        max(last_request_at) + to_minutes({{ gap }}) as session_end,
        service,
        user_key,
        max(user_id) as user_id,
        max(last_request_at) as last_request_at,
        sum(request_count) as request_count,
        sum(error_count) as error_count,
        count(*) as distinct_routes,
        -- list(route) holds every list in memory; string_agg spills. JSON quotes each route, so any route
        -- (commas and quotes included) comes back as itself
        list_sort(from_json('[' || string_agg(to_json(route)::varchar, ',') || ']', '["VARCHAR"]')) as routes

    from session_routes
    group by service, user_key, session_number

)

select * from sessions
where {{ in_batch_range('session_start') }}
