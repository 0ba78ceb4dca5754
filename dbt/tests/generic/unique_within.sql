{% test unique_within(model, column_name, time_column, minutes) %}
-- `column_name` is unique among the rows whose `time_column` lies within `minutes` of the newest one: the promise
-- of a de-duplication that remembers a value that long (a later second delivery is kept by design). The test
-- reads that window only, so its cost follows the traffic of the window, not the table's whole history.
with recent as (

    select {{ column_name }} as value
    from {{ model }}
    where {{ time_column }} >= (select max({{ time_column }}) from {{ model }}) - interval ({{ minutes }}) minute

)

select value, count(*) as deliveries
from recent
group by value
having count(*) > 1
{% endtest %}
