with source as (

    select * from {{ source('raw', 'dead_letter_events') }}

),

renamed as (

    select
        kafka_partition,
        kafka_offset,
        kafka_timestamp as received_at,
        cast(kafka_timestamp as date) as received_date,
        error_reason,
        payload,
        ingested_at

    from source

)

select * from renamed
