-- What dashboards read for the minute windows with allowed lateness per service and route: the stream's latest
-- firing of each window, or the batch layer's final count (dbt/macros/lambda.sql).
{{ serving_view('requests_per_route_minute', 'window_start', [
    'window_start', 'window_end', 'service', 'route', 'request_count', 'error_count',
]) }}
