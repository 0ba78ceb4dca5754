-- Sessions per day (of their start) and service, from the streaming layer's SESSION windows.
with sessions as (

    select * from {{ ref('stg_user_sessions') }}

),

final as (

    select
        session_date,
        service,
        count(*) as session_count,
        count(distinct user_key) as distinct_users,
        sum(request_count) as request_count,
        avg(request_count) as avg_requests_per_session,
        avg(active_seconds) as avg_active_seconds,
        quantile_cont(active_seconds, 0.5) as median_active_seconds,
        count(*) filter (where request_count = 1) / count(*) as bounce_rate,
        count(*) filter (where error_count > 0) / count(*) as sessions_with_errors_share

    from sessions
    group by session_date, service

)

select * from final
