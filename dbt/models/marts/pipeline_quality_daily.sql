-- How much of each day's traffic the pipeline could not use as it came: events too late for the windows
-- (per job), and messages that were not events at all (dead letters, by the day Kafka received them).
with events as (

    select event_date, count(*) as event_count
    from {{ ref('stg_http_events') }}
    group by event_date

),

late as (

    select event_date, count(distinct event_id) as late_event_count
    from {{ ref('stg_late_events') }}
    group by event_date

),

dead_letters as (

    select received_date, count(*) as dead_letter_count
    from {{ ref('stg_dead_letter_events') }}
    group by received_date

),

days as (

    select event_date as day from events
    union
    select received_date from dead_letters

),

final as (

    select
        days.day,
        coalesce(events.event_count, 0) as event_count,
        coalesce(late.late_event_count, 0) as late_event_count,
        coalesce(dead_letters.dead_letter_count, 0) as dead_letter_count,
        coalesce(late.late_event_count, 0) / nullif(events.event_count, 0) as late_rate,
        coalesce(dead_letters.dead_letter_count, 0)
            / (coalesce(events.event_count, 0) + coalesce(dead_letters.dead_letter_count, 0)) as dead_letter_rate

    from days
    left join events on events.event_date = days.day
    left join late on late.event_date = days.day
    left join dead_letters on dead_letters.received_date = days.day

)

select * from final
