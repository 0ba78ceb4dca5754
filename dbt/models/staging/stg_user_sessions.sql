with source as (

    select * from {{ source('speed', 'user_sessions') }}

),

renamed as (

    select
        service,
        user_key,
        user_id,
        session_start,
        session_end,
        cast(session_start as date) as session_date,
        last_request_at,
        -- from the first to the last request (session_end adds the inactivity gap)
        date_diff('millisecond', session_start, last_request_at) / 1000.0 as active_seconds,
        request_count,
        error_count,
        distinct_routes,
        routes

    from source

)

select * from renamed
