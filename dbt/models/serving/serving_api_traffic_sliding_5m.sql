-- What dashboards read for the 5-minute sliding traffic per service and route (dbt/macros/lambda.sql).
{{ serving_view('api_traffic_sliding_5m', 'window_start', [
    'window_start', 'window_end', 'service', 'route', 'request_count', 'error_count', 'error_rate',
    'requests_per_second', 'p95_duration_ms',
]) }}
