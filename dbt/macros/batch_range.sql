{#- The day range a Lambda batch run recomputes, [batch_start, batch_end) as ISO dates: the vars, by default
    the previous UTC day (the last one the stream has closed). -#}
{% macro batch_range() %}
    {%- set today = modules.datetime.datetime.utcnow().date() -%}
    {%- set start = (var('batch_start') or (today - modules.datetime.timedelta(days=1))) | string -%}
    {%- set end = (var('batch_end') or today) | string -%}
    {%- if start >= end -%}
        {{ exceptions.raise_compiler_error("vars batch_start (" ~ start ~ ") must be before batch_end (" ~ end ~ ")") }}
    {%- endif -%}
    {{ return([start, end]) }}
{% endmacro %}

{#- The batch models' filter: `column` inside the batch range, widened by `back_minutes` before it and
    `ahead_minutes` after it (the windows that start in the range but reach outside it). -#}
{% macro in_batch_range(column, back_minutes=0, ahead_minutes=0) %}
    {%- set start, end = batch_range() -%}
    {{ column }} >= timestamptz '{{ start }} 00:00:00+00' - to_minutes({{ back_minutes }})
    and {{ column }} < timestamptz '{{ end }} 00:00:00+00' + to_minutes({{ ahead_minutes }})
{%- endmacro %}
