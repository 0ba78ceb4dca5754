{% test unique_combination(model, columns) %}
-- one row per combination of `columns` (the model's grain)
select {{ columns | join(', ') }}, count(*) as rows_per_key
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
