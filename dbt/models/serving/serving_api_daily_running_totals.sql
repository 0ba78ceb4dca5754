-- What dashboards read for the running daily totals per service (dbt/macros/lambda.sql).
{{ serving_view('api_daily_running_totals', 'window_start', [
    'window_start', 'window_end', 'service', 'request_count', 'error_count', 'distinct_users',
]) }}
