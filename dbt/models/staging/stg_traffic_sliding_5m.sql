with source as (

    select * from {{ source('speed', 'api_traffic_sliding_5m') }}

),

renamed as (

    select
        window_start,
        window_end,
        cast(window_start as date) as window_date,
        service,
        route,
        request_count,
        error_count,
        error_rate,
        requests_per_second,
        p95_duration_ms

    from source

)

select * from renamed
