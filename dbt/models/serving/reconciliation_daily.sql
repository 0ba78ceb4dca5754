-- Lambda: per day and measure, what the stream counted against what the batch layer recomputed from every
-- event. The batch counts every event of the day; the stream cannot count an event that came too late for its
-- windows, so a difference is expected to be the day's late events (and anything the stream lost, which is the
-- point). The count is of requests: summed over a measure's rows, so a sliding 5-minute window counts each
-- request 5 times, and the running totals count the day's last step (window_end at the day's end).
{{ config(enabled=var('pipeline_mode') == 'lambda', materialized='table') }}
{%- for measure in ['api_requests_per_minute', 'api_traffic_sliding_5m', 'requests_per_route_minute',
                    'user_sessions', 'api_daily_running_totals', 'checkout_funnels'] %}
-- depends_on: {{ ref('batch_' ~ measure) }}
{%- endfor %}

with measures as (

    {{ reconcile('api_requests_per_minute', 'window_start', 'request_count') }}
    union all
    {{ reconcile('api_traffic_sliding_5m', 'window_start', 'request_count') }}
    union all
    {{ reconcile('requests_per_route_minute', 'window_start', 'request_count') }}
    union all
    {{ reconcile('user_sessions', 'session_start', 'request_count') }}
    union all
    {{ reconcile('api_daily_running_totals', 'window_start', 'request_count',
                 where='window_end = window_start + interval 1 day') }}
    union all
    {{ reconcile('checkout_funnels', 'window_start', 'steps') }}

),

final as (

    select
        day,
        measure,
        speed_count,
        batch_count,
        batch_count - speed_count as difference,
        (batch_count - speed_count) / batch_count as relative_difference

    from measures

)

select * from final
