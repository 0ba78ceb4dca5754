-- Daily API health per service and route, from every valid event (late ones included: a day's health is
-- what happened that day, not what the stream managed to count in time).
with events as (

    select * from {{ ref('stg_http_events') }}

),

daily as (

    select
        event_date,
        service,
        route,
        count(*) as request_count,
        count(*) filter (where is_server_error) as server_error_count,
        count(*) filter (where is_client_error) as client_error_count,
        count(*) filter (where is_bot) as bot_request_count,
        count(distinct user_key) as distinct_users,
        quantile_cont(duration_ms, 0.5) as p50_duration_ms,
        quantile_cont(duration_ms, 0.95) as p95_duration_ms,
        quantile_cont(duration_ms, 0.99) as p99_duration_ms,
        max(duration_ms) as max_duration_ms

    from events
    group by event_date, service, route

),

final as (

    select
        event_date,
        service,
        route,
        request_count,
        server_error_count,
        client_error_count,
        server_error_count / request_count as server_error_rate,
        bot_request_count / request_count as bot_share,
        distinct_users,
        p50_duration_ms,
        p95_duration_ms,
        p99_duration_ms,
        max_duration_ms

    from daily

)

select * from final
