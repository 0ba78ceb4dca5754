-- What dashboards read for requests per minute. Kappa: the stream's windows. Lambda: the batch layer's rows for
-- the days it has closed (any day with rows in batch.api_requests_per_minute), the stream's after them.
{%- if var('pipeline_mode') == 'lambda' %}
-- depends_on: {{ ref('batch_api_requests_per_minute') }}
{%- endif %}

with speed as (

    select
        window_start, window_end, service, route, status_code, request_count, error_count,
        avg_duration_ms, p50_duration_ms, p95_duration_ms, max_duration_ms
    from {{ ref('stg_requests_per_minute') }}

),

{% if var('pipeline_mode') == 'lambda' %}
batch as (

    select * from {{ source('batch', 'api_requests_per_minute') }}

),

closed_days as (

    select distinct cast(window_start as date) as day from batch

),

served as (

    select *, 'batch' as layer from batch
    union all
    select *, 'speed' as layer from speed
    where cast(window_start as date) not in (select day from closed_days)

)
{% else %}
served as (

    select *, 'speed' as layer from speed

)
{% endif %}

select * from served
