with source as (

    select * from {{ source('speed', 'api_requests_per_minute') }}

),

renamed as (

    select
        window_start,
        window_end,
        cast(window_start as date) as window_date,
        service,
        route,
        status_code,
        request_count,
        error_count,
        avg_duration_ms,
        p50_duration_ms,
        p95_duration_ms,
        max_duration_ms

    from source

)

select * from renamed
