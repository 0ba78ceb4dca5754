-- What dashboards read for requests per minute per service, route and status (dbt/macros/lambda.sql).
{{ serving_view('api_requests_per_minute', 'window_start', [
    'window_start', 'window_end', 'service', 'route', 'status_code', 'request_count', 'error_count',
    'avg_duration_ms', 'p50_duration_ms', 'p95_duration_ms', 'max_duration_ms',
]) }}
