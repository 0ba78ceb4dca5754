-- Lambda: per day and measure, what the stream counted against what the batch layer recomputed. The batch
-- counts every event of the day; the stream cannot count events that came too late for its windows, so a
-- difference is expected to be the day's late events (and anything the stream lost, which is the point).
{{ config(enabled=var('pipeline_mode') == 'lambda', materialized='table') }}
-- depends_on: {{ ref('batch_api_requests_per_minute') }}

with speed as (

    select cast(window_start as date) as day, sum(request_count) as speed_count
    from {{ ref('stg_requests_per_minute') }}
    group by 1

),

batch as (

    select cast(window_start as date) as day, sum(request_count) as batch_count
    from {{ source('batch', 'api_requests_per_minute') }}
    group by 1

),

final as (

    select
        batch.day,
        'api_requests_per_minute' as measure,
        coalesce(speed.speed_count, 0) as speed_count,
        batch.batch_count,
        batch.batch_count - coalesce(speed.speed_count, 0) as difference,
        (batch.batch_count - coalesce(speed.speed_count, 0)) / batch.batch_count as relative_difference

    from batch
    left join speed on speed.day = batch.day

)

select * from final
