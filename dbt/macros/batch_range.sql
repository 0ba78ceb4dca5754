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
