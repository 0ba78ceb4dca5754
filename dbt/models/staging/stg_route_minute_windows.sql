-- The DataStream minute windows with allowed lateness: the latest firing of each window only (the
-- reader view of lakehouse/duckdb_views.py), so a re-fired window counts once.
with source as (

    select * from {{ source('speed', 'requests_per_route_minute') }}

),

renamed as (

    select
        window_start,
        window_end,
        cast(window_start as date) as window_date,
        service,
        route,
        request_count,
        error_count,
        firing,
        fired_at

    from source

)

select * from renamed
