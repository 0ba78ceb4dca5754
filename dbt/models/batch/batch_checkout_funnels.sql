-- Lambda's batch layer: speed.checkout_funnels (a count window with timeout per service and user) recomputed
-- from every valid funnel request. The funnel rules are sequential (a funnel closes after its steps or its
-- timeout, and the next one opens after it), so each user's requests go through the stream's own rules:
-- checkout_funnels(), flink_jobs/checkout_funnel.py registered by the lake plugin. Reads
-- var('lookaround_minutes') around the range: a user's funnels chain, and one opened before midnight may
-- close after it.
{%- set batch_start, batch_end = batch_range() %}
{%- set routes = var('funnel_routes') %}
{{ config(
    materialized='external',
    plugin='lake',
    iceberg_table='batch.checkout_funnels',
    replace_column='window_start',
    replace_from=batch_start,
    replace_until=batch_end,
) }}

with funnel_requests as (

    select service, user_key, event_id, event_time, route, status_code
    from {{ ref('int_batch_events') }}
    where route in ('{{ routes | join("', '") }}')
      and {{ in_batch_range('event_time', back_minutes=var('lookaround_minutes'), ahead_minutes=var('lookaround_minutes')) }}

),

per_user as (

    select
        service,
        user_key,
        checkout_funnels(
            list({
                'event_ms': epoch_ms(event_time),
                'event_id': event_id,
                'route': route,
                'status_code': status_code
            }),
            ['{{ routes | join("', '") }}'],
            {{ var('funnel_timeout_minutes') | int * 60000 }}
        ) as funnels

    from funnel_requests
    group by all

),

funnels as (

    select service, user_key, unnest(funnels) as funnel
    from per_user

),

final as (

    select
        make_timestamptz(funnel.window_start_ms * 1000) as window_start,
        make_timestamptz(funnel.window_end_ms * 1000) as window_end,
        service,
        user_key,
        funnel.steps,
        funnel.deepest_step,
        funnel.last_route,
        funnel.outcome,
        funnel.closed_by

    from funnels

)

select * from final
where {{ in_batch_range('window_start') }}
