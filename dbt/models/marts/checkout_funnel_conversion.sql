-- Checkout conversion per day (of the funnel's first step) and service: of the funnels started, how many
-- completed, and where the others stopped.
with funnels as (

    select * from {{ ref('stg_checkout_funnels') }}

),

final as (

    select
        funnel_date,
        service,
        count(*) as funnels_started,
        count(*) filter (where outcome = 'completed') as funnels_completed,
        count(*) filter (where outcome = 'abandoned') as funnels_abandoned,
        count(*) filter (where outcome = 'completed') / count(*) as conversion_rate,
        count(*) filter (where closed_by = 'timeout') as closed_by_timeout,
        count(*) filter (where outcome = 'abandoned' and deepest_step = 1) as abandoned_at_step_1,
        count(*) filter (where outcome = 'abandoned' and deepest_step = 2) as abandoned_at_step_2,
        count(*) filter (where outcome = 'abandoned' and deepest_step >= 3) as abandoned_at_step_3_or_later

    from funnels
    group by funnel_date, service

)

select * from final
