-- Daily API health per service and route, from every valid event (late ones included: a day's health is
-- what happened that day, not what the stream managed to count in time).
--
-- Incremental: a build recomputes only the days that received events since the previous build (a late delivery
-- reopens its day), so its cost follows the traffic since then, not the lake's whole history. A day is
-- recomputed whole from raw.http_events, never patched. `marts_reopen_minutes` looks back that far before the
-- newest event the table has seen: events whose commit overtook an earlier one are not missed.
-- `dbt build --full-refresh` recomputes every day.
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_date',
        on_schema_change='fail',
    )
}}

with events as (

    select * from {{ ref('stg_http_events') }}
    {% if is_incremental() %}
    where event_date in (
        select distinct event_date
        from {{ ref('stg_http_events') }}
        where ingested_at > (
            -- an empty table (built before the first event) takes every day
            select coalesce(max(last_ingested_at) - interval ({{ var('marts_reopen_minutes') }}) minute, '-infinity')
            from {{ this }}
        )
    )
    {% endif %}

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
        -- one exact quantile aggregate for the three: each keeps every duration of its group in memory, beyond
        -- dbt.memory_limit (three of them held three copies; this model's build over a day of 14.4 million
        -- events, limit 256m: 1,108 MiB resident with three, 787 with one)
        quantile_cont(duration_ms, [0.5, 0.95, 0.99]) as duration_quantiles,
        max(duration_ms) as max_duration_ms,
        max(ingested_at) as last_ingested_at

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
        duration_quantiles[1] as p50_duration_ms,
        duration_quantiles[2] as p95_duration_ms,
        duration_quantiles[3] as p99_duration_ms,
        max_duration_ms,
        last_ingested_at

    from daily

)

select * from final
