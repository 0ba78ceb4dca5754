{% test expression_is_true(model, expression, column_name=none) %}
-- every row satisfies `expression` (rows where it is false or null fail)
select *
from {{ model }}
where not coalesce(({{ expression }}), false)
{% endtest %}
