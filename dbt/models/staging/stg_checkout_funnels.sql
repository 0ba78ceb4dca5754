with source as (

    select * from {{ source('speed', 'checkout_funnels') }}

),

renamed as (

    select
        service,
        user_key,
        window_start as funnel_start,
        window_end as funnel_end,
        cast(window_start as date) as funnel_date,
        steps,
        deepest_step,
        last_route,
        outcome,
        closed_by

    from source

)

select * from renamed
