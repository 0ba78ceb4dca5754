with source as (

    select * from {{ source('raw', 'http_events') }}

),

renamed as (

    select
        event_id,
        event_time,
        cast(event_time as date) as event_date,
        service,
        method,
        route,
        path,
        status_code,
        duration_ms,
        user_id,
        coalesce(user_id, client_address, 'anonymous') as user_key,
        device_class,
        coalesce(is_bot, false) as is_bot,
        status_code >= 500 as is_server_error,
        status_code between 400 and 499 as is_client_error,
        request_bytes,
        response_bytes,
        kafka_partition,
        kafka_offset,
        ingested_at

    from source

)

select * from renamed
