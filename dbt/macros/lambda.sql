{#- Lambda's serving and reconciliation, the same for every measure: `measure` names the table in both the
    speed and the batch source (dbt/models/serving/_serving.yml). -#}

{#- The serving view of a measure. Kappa: the stream's rows. Lambda: the batch layer's rows for the days it has
    closed (the days of `day_column` with rows in batch.<measure>), the stream's after them; `layer` says which. -#}
{% macro serving_view(measure, day_column, columns) %}
{%- set column_list = columns | join(', ') %}
{%- if var('pipeline_mode') == 'lambda' %}
-- depends_on: {{ ref('batch_' ~ measure) }}
with batch as (

    select {{ column_list }} from {{ source('batch', measure) }}

),

speed as (

    select {{ column_list }} from {{ source('speed', measure) }}

),

closed_days as (

    select distinct cast({{ day_column }} as date) as day from batch

),

served as (

    select *, 'batch' as layer from batch
    union all
    select *, 'speed' as layer from speed
    where cast({{ day_column }} as date) not in (select day from closed_days)

)
{%- else %}
with served as (

    select {{ column_list }}, 'speed' as layer from {{ source('speed', measure) }}

)
{%- endif %}

select * from served
{% endmacro %}

{#- One measure's reconciliation rows: per day the batch layer has, `count` summed over the speed and the batch
    rows of that day (of `day_column`, the rows matching `where`), and the difference. -#}
{% macro reconcile(measure, day_column, count, where='true') %}
    select
        batch.day,
        '{{ measure }}' as measure,
        coalesce(speed.total, 0) as speed_count,
        batch.total as batch_count

    from (
        select cast({{ day_column }} as date) as day, sum({{ count }}) as total
        from {{ source('batch', measure) }}
        where {{ where }}
        group by 1
    ) as batch
    left join (
        select cast({{ day_column }} as date) as day, sum({{ count }}) as total
        from {{ source('speed', measure) }}
        where {{ where }}
        group by 1
    ) as speed on speed.day = batch.day
{% endmacro %}
