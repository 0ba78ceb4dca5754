-- What dashboards read for checkout funnels (dbt/macros/lambda.sql); a funnel belongs to the day it opened.
{{ serving_view('checkout_funnels', 'window_start', [
    'window_start', 'window_end', 'service', 'user_key', 'steps', 'deepest_step', 'last_route', 'outcome',
    'closed_by',
]) }}
