with source as (

    select * from {{ source('speed', 'api_daily_running_totals') }}

),

renamed as (

    select
        window_start as day_start,
        window_end as running_until,
        cast(window_start as date) as day,
        service,
        request_count,
        error_count,
        distinct_users

    from source

)

select * from renamed
