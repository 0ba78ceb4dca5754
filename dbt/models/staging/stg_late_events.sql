with source as (

    select * from {{ source('raw', 'late_events') }}

),

renamed as (

    select
        event_id,
        event_time,
        cast(event_time as date) as event_date,
        service,
        route,
        status_code,
        user_id,
        job_name,
        window_name,
        window_start,
        window_end,
        watermark,
        detected_at,
        -- how far behind the job's watermark the event arrived
        date_diff('millisecond', event_time, watermark) / 1000.0 as seconds_behind_watermark

    from source

)

select * from renamed
